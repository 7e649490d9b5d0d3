"""What only the in-memory backend promises: it is bounded."""

from __future__ import annotations

import time

from sessions_app.stores.base import Message, SessionKey
from sessions_app.stores.memory import InMemoryStore


def key(n: int) -> SessionKey:
    return SessionKey(tenant="t", session_id=f"s{n}")


def test_past_the_bound_the_least_recently_used_goes() -> None:
    store = InMemoryStore(max_sessions=3)
    for n in range(3):
        store.commit(key(n), expected_version=0, append=[Message("user", f"m{n}")])
    store.load(key(0))  # touched: now the most recently used
    store.commit(key(3), expected_version=0, append=[Message("user", "m3")])
    assert [store.load(key(n)).exists for n in range(4)] == [True, False, True, True]


def test_expired_sessions_are_evicted_before_live_ones() -> None:
    store = InMemoryStore(ttl=0.2, max_sessions=2)
    store.commit(key(0), expected_version=0, append=[Message("user", "old")])
    time.sleep(0.3)
    store.commit(key(1), expected_version=0, append=[Message("user", "a")])
    store.commit(key(2), expected_version=0, append=[Message("user", "b")])
    assert len(store._entries) == 2
    assert store.load(key(1)).exists and store.load(key(2)).exists
