"""How a run ended, as its row records it: the last event of its stream when its log lacks it.

A run's end is an event of its log (written by ``runs.events`` or ``runs.transitions``); only when
that write failed or the log expired does a stream need the row, which it reads as it opens, then
every ``AK_RUN__STREAM_CHECK`` seconds.
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
