"""What a process looked up lately, kept in the process for a few seconds.

A run reads rows that almost never change (its agent) and whose change may take a few seconds to
reach every process. (Not API keys: a revoked key must be refused at once, everywhere, so every
request looks its key up.) Remembering them spares each request a database round trip;
the process that makes a change forgets at once (a ``post_save`` receiver calls ``forget`` or
``clear``), the others within ``ttl`` seconds. Entries are objects, nothing is serialized; past
``max_entries`` the process starts over.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class Recent(Generic[V]):
    """``get(key, load)``: the value ``load()`` gave for ``key`` less than ``ttl()`` seconds ago,
    else what it gives now (an exception ``load`` raises is not remembered)."""

    def __init__(self, ttl: Callable[[], float], *, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, V]] = {}

    def get(self, key: Hashable, load: Callable[[], V]) -> V:
        ttl = self._ttl()
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry[0] < ttl:
            return entry[1]
        value = load()
        if ttl > 0:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), value)
        return value

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
