"""The heartbeat of every run a process executes, in one statement per beat whatever their number.

Every ``AK_RUN__HEARTBEAT`` seconds the watcher of a process (one per event loop and worker name)
writes ``heartbeat_at`` on all its running runs in one ``UPDATE``, and reads back in one ``SELECT``
those a cancel was asked for and those no longer its own (the sweeper took them back): their
``Cancellation`` is set, so the adapter stops and nothing is committed.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.utils import timezone

from agents_app.models import Run
from agents_app.runner import Cancellation, Every
from infra.io_threads import PerProcess, db_in

logger = logging.getLogger(__name__)

#: The beats' own thread (and database connection): a burst of the runs' database and store work
#: in the I/O pool must not delay a beat past ``AK_RUN__HEARTBEAT_TIMEOUT``.
_beat_thread = PerProcess(lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="ak-beat"))


class Watcher:
    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.runs: dict[str, Cancellation] = {}
        self._lost: set[str] = set()
        self._timer: Every | None = None

    def watch(self, run_id: str, cancellation: Cancellation) -> None:
        """Beat for ``run_id`` from now on; ``cancellation`` is set if it is cancelled or lost."""
        self.runs[run_id] = cancellation
        if self._timer is None:
            self._timer = Every(settings.AK_RUN["HEARTBEAT"], self._beat)

    def forget(self, run_id: str) -> bool:
        """Stop beating for ``run_id``; return whether it was lost (taken back by the sweeper)."""
        self.runs.pop(run_id, None)
        lost = run_id in self._lost
        self._lost.discard(run_id)
        return lost

    async def _beat(self) -> bool:
        ids = list(self.runs)
        if not ids:
            return True
        try:
            cancelled, gone = await db_in(_beat_thread(), beat, worker=self.worker, run_ids=ids)
        except Exception:  # the database blinked: the next beat tries again
            logger.warning("heartbeat of %d runs failed", len(ids), exc_info=True)
            return True
        for run_id in cancelled | gone:
            cancellation = self.runs.get(run_id)
            if cancellation is not None:
                if run_id in gone:
                    self._lost.add(run_id)
                cancellation.set()
        return True


def beat(*, worker: str, run_ids: list[str]) -> tuple[set[str], set[str]]:
    """Write the heartbeat of ``worker``'s running runs among ``run_ids``; return those a cancel
    was asked for and those that are not ``worker``'s running runs any more."""
    Run.objects.filter(pk__in=run_ids, status=Run.Status.RUNNING, worker=worker).update(heartbeat_at=timezone.now())
    rows = Run.objects.filter(pk__in=run_ids).values_list("pk", "status", "worker", "cancel_requested_at")
    cancelled, gone = set(), set(run_ids)
    for pk, status, holder, cancel_requested_at in rows:
        if status == Run.Status.RUNNING and holder == worker:
            gone.discard(str(pk))
        if cancel_requested_at is not None:
            cancelled.add(str(pk))
    return cancelled, gone


_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Watcher]] = weakref.WeakKeyDictionary()


def watcher_for(worker: str) -> Watcher:
    """The watcher of ``worker``'s runs on the running loop."""
    by_worker = _watchers.setdefault(asyncio.get_running_loop(), {})
    if worker not in by_worker:
        by_worker[worker] = Watcher(worker)
    return by_worker[worker]
