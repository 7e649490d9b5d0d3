"""The event log part of the store contract: one suite, every backend, real services (see ``store``
in conftest). A worker appends a run's events; any process reads, replays and waits for them."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from sessions_app.stores import get_event_log, get_store
from sessions_app.stores.base import SHARED_SCOPE, Message, PayloadTooLarge, SessionKey, SessionStore
from sessions_app.stores.events import MAX_APPEND_EVENTS, Event, EventLog


def deltas(*texts: str) -> list[tuple[str, dict]]:
    return [("delta", {"text": t}) for t in texts]


def texts(events: list[Event]) -> list[str]:
    return [e.data["text"] for e in events]


def ids(events: list[Event]) -> list[int]:
    return [e.id for e in events]


def test_ids_run_1_to_n_across_appends(store: SessionStore, key: SessionKey) -> None:
    assert store.append_events(key, "r1", [("run", {"status": "running", "n": [1, 2]})]) == 1
    assert store.append_events(key, "r1", deltas("a", "b", "ünï ✓")) == 4
    assert store.append_events(key, "r1", [("done", {"result": None})]) == 5

    events = store.read_events(key, "r1")

    assert ids(events) == [1, 2, 3, 4, 5]
    assert [e.kind for e in events] == ["run", "delta", "delta", "delta", "done"]
    assert events[0].data == {"status": "running", "n": [1, 2]}
    assert texts(events[1:4]) == ["a", "b", "ünï ✓"]
    assert events[4] == Event(5, "done", {"result": None})
    assert store.append_events(key, "r1", []) == 5  # nothing to add: the count so far


def test_read_after_an_id_and_up_to_a_limit(store: SessionStore, key: SessionKey) -> None:
    store.append_events(key, "r1", deltas(*[f"t{i}" for i in range(1, 11)]))

    assert ids(store.read_events(key, "r1", after=7)) == [8, 9, 10]  # Last-Event-ID: 7
    assert ids(store.read_events(key, "r1", limit=3)) == [1, 2, 3]
    assert ids(store.read_events(key, "r1", after=4, limit=2)) == [5, 6]
    assert store.read_events(key, "r1", after=10) == []
    assert store.read_events(key, "r1", after=50) == []
    assert store.read_events(key, "r1", limit=0) == []
    pages, after = [], 0
    while page := store.read_events(key, "r1", after=after, limit=4):
        pages.append(ids(page))
        after = page[-1].id
    assert pages == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]  # each once, none twice


def test_an_unknown_run_has_no_events(store: SessionStore, key: SessionKey) -> None:
    assert store.read_events(key, "never-ran") == []
    assert store.read_events(key, "never-ran", after=3) == []
    assert store.append_events(key, "never-ran", []) == 0
    store.append_events(key, "other-run", deltas("x"))
    assert store.read_events(key, "never-ran") == []


def test_runs_and_tenants_never_see_each_others_events(store: SessionStore) -> None:
    one = SessionKey(tenant=f"t{uuid.uuid4().hex[:10]}", session_id="same-id")
    two = SessionKey(tenant=f"t{uuid.uuid4().hex[:10]}", session_id="same-id")
    store.append_events(one, "run-1", deltas("secret", "of one"))

    assert store.read_events(two, "run-1") == []
    assert store.append_events(two, "run-1", deltas("for two")) == 1  # a log of its own, from 1
    assert store.append_events(one, "run-2", deltas("other run")) == 1
    assert texts(store.read_events(one, "run-1")) == ["secret", "of one"]
    assert texts(store.read_events(two, "run-1")) == ["for two"]
    store.delete(two)
    assert texts(store.read_events(one, "run-1")) == ["secret", "of one"]


def test_delete_removes_the_sessions_event_logs(store: SessionStore, key: SessionKey) -> None:
    store.commit(key, expected_version=0, append=[Message("user", "hi")], state={SHARED_SCOPE: {"k": 1}})
    store.append_events(key, "r1", deltas("a", "b"))
    store.append_events(key, "r2", deltas("c"))
    bare = SessionKey(tenant=key.tenant, session_id=key.session_id + "-bare")  # events, never a commit
    store.append_events(bare, "r1", deltas("d"))

    assert store.delete(key) is True
    store.delete(bare)

    assert store.read_events(key, "r1") == [] and store.read_events(key, "r2") == []
    assert store.read_events(bare, "r1") == []
    assert store.append_events(key, "r1", deltas("fresh")) == 1
    assert texts(store.read_events(key, "r1")) == ["fresh"]


def test_delete_logs_takes_the_logs_and_leaves_the_session(store: SessionStore, key: SessionKey) -> None:
    assert isinstance(store, EventLog)  # every backend keeps event logs beside its sessions
    store.commit(key, expected_version=0, append=[Message("user", "hi")])
    store.append_events(key, "r1", deltas("a"))
    other = SessionKey(tenant=key.tenant, session_id=key.session_id + "-other")
    store.append_events(other, "r1", deltas("b"))

    store.delete_logs(key)

    assert store.read_events(key, "r1") == []
    assert texts(store.read_events(other, "r1")) == ["b"]
    assert [m.content for m in store.history(key)] == ["hi"]


def test_the_process_wide_event_log_is_the_configured_store() -> None:
    assert get_event_log() is get_store()


def test_what_is_not_a_json_object_writes_nothing(store: SessionStore, key: SessionKey) -> None:
    with pytest.raises(TypeError):
        store.append_events(key, "r1", [("delta", {"text": "ok"}), ("delta", {"bad": object()})])
    with pytest.raises(TypeError):
        store.append_events(key, "r1", [("delta", ["not", "an", "object"])])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        store.append_events(key, "r1", [("two\nlines", {})])  # a kind is an SSE event name
    with pytest.raises(PayloadTooLarge):
        store.append_events(key, "r1", deltas(*["x"] * (MAX_APPEND_EVENTS + 1)))
    assert store.read_events(key, "r1") == []
    assert store.append_events(key, "r1", deltas(*["x"] * MAX_APPEND_EVENTS)) == MAX_APPEND_EVENTS


def test_concurrent_appends_get_distinct_consecutive_ids(store: SessionStore, key: SessionKey) -> None:
    start = threading.Barrier(2)

    def appender(name: str) -> list[int]:
        start.wait()
        return [store.append_events(key, "r1", deltas(f"{name}{i}a", f"{name}{i}b")) for i in range(15)]

    with ThreadPoolExecutor(2) as pool:
        lasts = [f.result() for f in [pool.submit(appender, "x"), pool.submit(appender, "y")]]

    events = store.read_events(key, "r1")
    assert ids(events) == list(range(1, 61))
    assert sorted(lasts[0] + lasts[1]) == list(range(2, 61, 2))  # each append took its own two ids
    expected = sorted(f"{n}{i}{p}" for n in "xy" for i in range(15) for p in "ab")
    assert sorted(texts(events)) == expected  # nothing lost, nothing twice
    for last in lasts[0] + lasts[1]:  # an append's two events are adjacent, in order
        assert events[last - 2].data["text"][:-1] == events[last - 1].data["text"][:-1]


def later(seconds: float, function: Callable[..., object], *args: object) -> threading.Timer:
    """Call ``function`` from another thread in ``seconds``; join it before the store closes."""
    timer = threading.Timer(seconds, function, args=args)
    timer.start()
    return timer


def wait(store: SessionStore, key: SessionKey, run_id: str, **options: float) -> tuple[list[Event], float]:
    """``wait_events`` on an event loop of its own; what it returned and how long it took."""

    async def timed() -> tuple[list[Event], float]:
        started = time.monotonic()
        events = await store.wait_events(key, run_id, **options)
        return events, time.monotonic() - started

    return asyncio.run(timed())


def test_wait_returns_at_once_when_events_are_there(store: SessionStore, key: SessionKey) -> None:
    store.append_events(key, "r1", deltas("a", "b", "c"))

    events, took = wait(store, key, "r1", timeout=10)
    assert (ids(events), took < 5) == ([1, 2, 3], True)
    events, took = wait(store, key, "r1", after=1, limit=1, timeout=10)
    assert (ids(events), took < 5) == ([2], True)


def test_wait_returns_what_another_thread_appends_meanwhile(store: SessionStore, key: SessionKey) -> None:
    store.append_events(key, "r1", deltas("before"))
    appender = later(0.2, store.append_events, key, "r1", deltas("x", "y"))

    events, took = wait(store, key, "r1", after=1, timeout=10)
    appender.join()

    assert ids(events) == [2, 3] and texts(events) == ["x", "y"]
    assert 0.1 < took < 5


def test_wait_times_out_empty_and_frees_the_loop(store: SessionStore, key: SessionKey) -> None:
    store.append_events(key, "r1", deltas("seen"))

    async def main() -> tuple[list[Event], float, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        beat = asyncio.create_task(ticker())
        started = time.monotonic()
        events = await store.wait_events(key, "r1", after=1, timeout=1.0)
        took = time.monotonic() - started
        beat.cancel()
        return events, took, ticks

    events, took, ticks = asyncio.run(main())
    assert events == []
    assert 0.95 <= took < 6
    # The loop ran other tasks while it waited; how often depends on the machine's load (a loaded
    # CI machine once gave none in 0.3 s, two in another run: a second leaves room).
    assert ticks >= 1


def test_many_waiters_share_a_few_threads(store: SessionStore, key: SessionKey) -> None:
    """Waiting holds no thread: 20 waiters on a loop with 2 threads all get what comes."""

    async def main() -> list[list[Event]]:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(2))
        return await asyncio.gather(*(store.wait_events(key, "r1", timeout=10) for _ in range(20)))

    started = time.monotonic()
    appender = later(0.3, store.append_events, key, "r1", deltas("for all"))
    results = asyncio.run(main())
    appender.join()
    assert [ids(r) for r in results] == [[1]] * 20
    assert time.monotonic() - started < 8


@pytest.mark.parametrize("kind", ["in_memory", "in_memory_socket", "redis", "dynamodb"])
def test_an_event_log_expires_after_its_last_append(
    make_store: Callable[..., SessionStore], key: SessionKey, kind: str
) -> None:
    short = make_store(kind, events_ttl=1)
    short.append_events(key, "r1", deltas("a"))
    time.sleep(0.6)
    short.append_events(key, "r1", deltas("b"))  # pushes the expiry
    time.sleep(0.6)
    assert ids(short.read_events(key, "r1")) == [1, 2]  # 1.2 s after the first append, 0.6 s after the last
    time.sleep(0.7)
    assert short.read_events(key, "r1") == []
    assert short.append_events(key, "r1", deltas("c")) == 1  # a new log
    assert texts(short.read_events(key, "r1")) == ["c"]


def test_redis_sets_the_ttl_on_the_log(make_store: Callable[..., SessionStore], key: SessionKey) -> None:
    from sessions_app.stores.redis import RedisStore, events_key

    store = make_store("redis", events_ttl=120)
    assert isinstance(store, RedisStore)
    store.append_events(key, "r1", deltas("a"))

    assert 110_000 < store.client.pttl(events_key(key, "r1")) <= 120_000
    logs = events_key(key, "r1").rsplit(":ev:", 1)[0] + ":events"  # the session's set of logs
    assert store.client.smembers(logs) == {b"r1"}
    assert 110_000 < store.client.pttl(logs) <= 120_000
    store.delete(key)
    assert store.client.exists(events_key(key, "r1"), logs) == 0


def test_redis_waits_on_a_client_per_event_loop(make_store: Callable[..., SessionStore], key: SessionKey) -> None:
    """redis.asyncio connections belong to their loop: waits from several loops, one after the
    other and at once in two threads, each get their events."""
    store = make_store("redis")
    store.append_events(key, "r1", deltas("a"))
    for _ in range(3):
        assert ids(wait(store, key, "r1", timeout=5)[0]) == [1]

    results: list[list[int]] = []

    def waiter() -> None:
        results.append(ids(wait(store, key, "r1", after=1, timeout=10)[0]))

    threads = [threading.Thread(target=waiter) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    store.append_events(key, "r1", deltas("b"))
    for t in threads:
        t.join()
    assert results == [[2], [2]]


def test_dynamodb_refuses_an_event_over_one_item(make_store: Callable[..., SessionStore], key: SessionKey) -> None:
    from sessions_app.stores.dynamodb import MAX_ITEM_BYTES

    store = make_store("dynamodb")
    with pytest.raises(PayloadTooLarge):
        store.append_events(key, "r1", [("delta", {"text": "x" * (MAX_ITEM_BYTES + 1)})])
    assert store.read_events(key, "r1") == []


def test_dynamodb_appends_from_two_stores_take_turns(make_store: Callable[..., SessionStore], key: SessionKey) -> None:
    """Two processes (two stores) append to one log: each one's memory of the head goes stale,
    and its next append reads the head again instead of taking ids already taken."""
    one, two = make_store("dynamodb"), make_store("dynamodb")
    assert one.append_events(key, "r1", deltas("1a", "1b")) == 2
    assert two.append_events(key, "r1", deltas("2a")) == 3
    assert one.append_events(key, "r1", deltas("1c")) == 4
    assert two.append_events(key, "r1", deltas("2b")) == 5
    assert texts(one.read_events(key, "r1")) == ["1a", "1b", "2a", "1c", "2b"]


def test_in_memory_sweeps_expired_logs(monkeypatch: pytest.MonkeyPatch, key: SessionKey) -> None:
    from sessions_app.stores import memory

    store = memory.InMemoryStore(events_ttl=0.2)
    for n in range(5):
        store.append_events(SessionKey(tenant=key.tenant, session_id=f"s{n}"), "r1", deltas("x"))
    time.sleep(0.3)
    monkeypatch.setattr(memory, "_SWEEP_EVERY", 0.0)
    store.append_events(key, "r1", deltas("live"))
    assert list(store._logs) == [key]  # the expired logs went, not only out of sight
