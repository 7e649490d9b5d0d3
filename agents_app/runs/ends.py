"""How a run ended, as its row records it: the last event of its stream when its log lacks it.

A stream waits on the run's events in the store, and a run's end is an event: the process that
executes a run writes it (``runs.events``), and so do the transitions that end a run elsewhere (a
queued run cancelled or failed to queue, a run the sweeper gave up: ``runs.transitions``). Only
when that write failed (the store was down at that moment) or the log expired does a stream need
the row: a stream reads it as it opens, then every ``AK_RUN__STREAM_CHECK`` seconds.
"""

from __future__ import annotations

from agents_app.models import Run

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
    fields = ("session__session_id", "status", "result", "error")
    row = Run.objects.filter(pk=run_id, status__in=Run.FINISHED).values_list(*fields).first()
    if row is None:
        return None
    session_id, status, result, error = row
    return end_event(run_id=run_id, session_id=session_id, status=status, result=result, error=error)
