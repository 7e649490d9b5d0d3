"""The event log contract: what a run streams, kept beside its session.

Per run of a session, an **event log**: what the run streams (Server-Sent Events), appended by the
process that executes the run and read, replayed and waited on by any process that serves it.
Events are numbered 1, 2, 3, ... per run; a log lives ``events_ttl`` seconds after its last
append, needs no committed session, and goes with its session (``delete_logs``, which a backend
that keeps sessions too calls from ``SessionStore.delete``). Every key carries the tenant, as the
session store's do; a backend raises only the store's errors (``base``).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sessions_app.stores.base import ID, PayloadTooLarge, SessionKey, dumps

#: Most events one ``append_events`` takes (a DynamoDB transaction holds them and the log's head).
MAX_APPEND_EVENTS: Final = 99


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a run's log: ``id`` 1, 2, 3... in append order (the SSE ``id:``); ``kind`` an
    identifier (the SSE ``event:``); ``data`` a JSON object."""

    id: int
    kind: str
    data: dict[str, Any]


def check_run_id(run_id: str) -> str:
    """A run id names an event log: a non-empty string of at most 200 characters."""
    if not isinstance(run_id, str) or not run_id or len(run_id) > 200:
        raise ValueError(f"invalid run id: {run_id!r}")
    return run_id


def encode_events(events: Sequence[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, str]]:
    """What ``append_events`` writes: ``(kind, data as JSON)`` per event, checked.

    ``ValueError`` for a kind that is not an identifier, ``TypeError`` for data that is not a JSON
    object, ``PayloadTooLarge`` for more than ``MAX_APPEND_EVENTS`` events: nothing is written.
    """
    if len(events) > MAX_APPEND_EVENTS:
        raise PayloadTooLarge(f"one append holds at most {MAX_APPEND_EVENTS} events, not {len(events)}")
    rows = []
    for kind, data in events:
        if not isinstance(kind, str) or not ID.match(kind) or len(kind) > 100:
            raise ValueError(f"invalid event kind: {kind!r}")
        if not isinstance(data, Mapping):
            raise TypeError(f"event data must be a JSON object, not {type(data).__name__}")
        rows.append((kind, dumps(dict(data))))
    return rows


class EventLog(ABC):
    """The contract every event log backend meets."""

    def __init__(self, *, events_ttl: float = 3600) -> None:
        #: Seconds a log is kept after its last append (``0``: until its session is deleted).
        self.events_ttl = float(events_ttl)

    @abstractmethod
    def append_events(self, key: SessionKey, run_id: str, events: Sequence[tuple[str, dict[str, Any]]]) -> int:
        """Append ``events`` (kind, data) to run ``run_id``'s log in one atomic write; return the id
        of the last one (the count so far; with no events, nothing is written).

        Concurrent appends from any processes get distinct, consecutive ids and lose nothing; a
        reader never sees an id before those below it. An expired log starts again at 1. Raises
        ``ValueError``, ``TypeError`` (as ``encode_events``), ``PayloadTooLarge`` (also an event
        over the backend's record size) and ``StoreUnavailable``; nothing is written then.
        """

    @abstractmethod
    def read_events(self, key: SessionKey, run_id: str, *, after: int = 0, limit: int = 1000) -> list[Event]:
        """Up to ``limit`` events with ``id > after``, oldest first, consecutive; ``[]`` when there
        are none (or no such log, or an expired one). Raises ``StoreUnavailable``.
        """

    async def wait_events(
        self, key: SessionKey, run_id: str, *, after: int = 0, timeout: float = 15.0, limit: int = 1000
    ) -> list[Event]:
        """``read_events``, waiting up to ``timeout`` s for at least one event; ``[]`` on timeout.

        Never blocks the event loop and holds no thread while it waits: this implementation polls
        ``read_events`` in a thread, 20 ms doubling to 250 ms apart. Raises ``StoreUnavailable``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.02
        while True:
            events = await asyncio.to_thread(self.read_events, key, run_id, after=after, limit=limit)
            remaining = deadline - loop.time()
            if events or remaining <= 0:
                return events
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.25)

    @abstractmethod
    def delete_logs(self, key: SessionKey) -> None:
        """Remove every event log of the session's runs. Raises ``StoreUnavailable``."""
