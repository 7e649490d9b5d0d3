"""A run's events, for streaming: kept in the session store's per-run log, read from anywhere.

    run    {"run_id", "session_id"}            the adapter starts (again, if an attempt is retried)
    delta  {"text"}                            a piece of the reply, as the adapter produces it
    done   {"run_id", "session_id", "result"}  the run succeeded; the deltas concatenated are result
    error  {"code", "detail"}                  it failed
    cancelled {"code", "detail"}               it was cancelled
    paused {"kind", "requests" | "prompt"}     it waits for a person (CONTRACT's ``pause`` object);
                                               its resume's events follow in the same log

The store, because every process of a deployment shares it whatever the broker, with the tenant in
every key: a worker appends; a web process replays what is past and waits for more
(``SessionStore.wait_events``). Writes are batched: the events of the next ``FLUSH_EVERY``
seconds go in one append, so a streamed reply costs a write per batch, not per word.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from infra import metrics
from infra.io_threads import blocking
from sessions_app.stores.base import SessionKey, SessionStore, StoreError
from sessions_app.stores.events import Event

logger = logging.getLogger(__name__)

FLUSH_EVERY = 0.05
ENDS = frozenset({"done", "error", "cancelled"})
PAUSED = "paused"
#: The events a stream stops after: an end, or a pause (the run goes on only when resumed).
STOPS = ENDS | {PAUSED}


class RunEvents:
    """The events one run emits while it executes: into the store's log in batches, and, for a
    caller streaming the run from this process, onto ``listener`` as they come (with their ids)."""

    def __init__(
        self, store: SessionStore, key: SessionKey, run_id: str, *, listener: asyncio.Queue[Event] | None = None
    ) -> None:
        self.store, self.key, self.run_id = store, key, run_id
        self.listener = listener
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._flush: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None
        self._last_id = 0

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        """Record an event (written within ``FLUSH_EVERY`` s)."""
        self._pending.append((kind, data))
        self._notify(kind, data)
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(FLUSH_EVERY, self._start_write)

    def _notify(self, kind: str, data: dict[str, Any]) -> None:
        if self.listener is not None:
            self._last_id += 1
            self.listener.put_nowait(Event(self._last_id, kind, data))

    def refused(self, kind: str, data: dict[str, Any]) -> None:
        """The run is not kept (a busy session turned its request away): ``kind`` goes to the
        listener only; nothing pending, nothing to the store's log."""
        self._unschedule()
        self._pending = []
        self._notify(kind, data)

    async def numbered_after_log(self) -> None:
        """For a resumed run streamed from here: the listener's ids go on after the events its log
        has (those of its run up to its pause)."""
        if self.listener is None:
            return
        try:
            while page := await blocking(self.store.read_events, self.key, self.run_id, after=self._last_id):
                self._last_id = page[-1].id
        except StoreError:  # the ids sent may repeat the log's; the run is not stopped for that
            logger.warning("run %s: its log could not be read", self.run_id)

    def delta(self, text: str) -> None:
        if text:
            self.emit("delta", {"text": text})

    def started(self) -> None:
        self.emit("run", {"run_id": self.run_id, "session_id": self.key.session_id})

    def _start_write(self) -> None:
        self._flush = None
        if self._writing is None or self._writing.done():
            self._writing = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            await blocking(self.store.append_events, self.key, self.run_id, batch)

    async def close(self) -> None:
        """Write what is pending now: the run's last events. Returns once every event is in the
        store, or lost with a store that fails now (not the run: its end is recorded on the run,
        and a stream reads it from there)."""
        self._unschedule()
        try:
            if self._writing is not None:
                await self._writing
            await self._write()
        except StoreError as exc:
            metrics.STORE_ERRORS.labels(error=type(exc).__name__).inc()
            logger.warning("run %s: its last events were not written", self.run_id)

    async def end(self, kind: str, data: dict[str, Any]) -> None:
        """The run's last event, ``kind``, once its end is recorded on its row: given to the
        listener, then written with what is pending (``close``)."""
        self.emit(kind, data)
        await self.close()

    def _unschedule(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
