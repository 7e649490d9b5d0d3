"""How a run ended, as its row records it: the last event of its stream when its log lacks it.

A stream waits on the run's events in the store, and a run's end is an event: the process that
executes a run writes it (``runs.events``), and so do the transitions that end a run elsewhere (a
queued run cancelled or failed to queue, a run the sweeper gave up: ``runs.transitions``). Only
when that write failed (the store was down at that moment) or the log expired does a stream need
the row. So the streams of a process share one check (``EndWatch``): every
``AK_RUN__STREAM_CHECK`` seconds, one query for the runs they all follow, never one per stream.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import Counter

from django.conf import settings

from agents_app.models import Run
from agents_app.runner import Every
from akplatform.aio import db

logger = logging.getLogger(__name__)

#: An end event as the stream sends it: (kind, data).
End = tuple[str, dict]


def end_event(*, run_id: str, session_id: str, status: str, result: str | None, error: str | None) -> End:
    """The event that tells a stream how the run ended, from what its row records."""
    if status == Run.Status.SUCCEEDED:
        return "done", {"run_id": run_id, "session_id": session_id, "result": result}
    if status == Run.Status.CANCELLED:
        return "cancelled", {"code": "run_cancelled", "detail": error or "cancelled"}
    return "error", {"code": "run_failed", "detail": error or "failed"}


def run_end(run_id: str) -> End | None:
    """The run's end event as its row records it; None while it is unfinished."""
    return runs_ends([run_id]).get(run_id)


def runs_ends(run_ids: list[str]) -> dict[str, End]:
    """``run_end`` of many runs in one query: those that ended, by id."""
    rows = Run.objects.filter(pk__in=run_ids, status__in=Run.FINISHED)
    fields = ("pk", "session__session_id", "status", "result", "error")
    return {
        str(pk): end_event(run_id=str(pk), session_id=session_id, status=status, result=result, error=error)
        for pk, session_id, status, result, error in rows.values_list(*fields)
    }


class EndWatch:
    """The ends of the runs a process's streams follow, read for all of them at once."""

    def __init__(self) -> None:
        self.followed: Counter[str] = Counter()
        self.ended: dict[str, End] = {}
        self._timer: Every | None = None

    def follow(self, run_id: str) -> None:
        self.followed[run_id] += 1
        if self._timer is None:
            self._timer = Every(settings.AK_RUN["STREAM_CHECK"], self._check)

    def unfollow(self, run_id: str) -> None:
        self.followed[run_id] -= 1
        if self.followed[run_id] <= 0:
            del self.followed[run_id]
            self.ended.pop(run_id, None)

    def end_of(self, run_id: str) -> End | None:
        """The run's end, if the last check found it ended."""
        return self.ended.get(run_id)

    async def _check(self) -> bool:
        ids = list(self.followed)
        if not ids:
            self._timer = None
            return False
        try:
            self.ended.update(await db(runs_ends, ids))
        except Exception:  # the database blinked: the next check tries again
            logger.warning("the ends of %d followed runs could not be read", len(ids), exc_info=True)
        return True


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, EndWatch] = weakref.WeakKeyDictionary()


def end_watch() -> EndWatch:
    """The running loop's watch."""
    loop = asyncio.get_running_loop()
    if loop not in _watches:
        _watches[loop] = EndWatch()
    return _watches[loop]
