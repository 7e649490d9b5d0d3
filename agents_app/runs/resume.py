"""A paused run goes on: the person's answer checked against what it waits for, then the same run
executed from its pause (sync, streamed or queued, as ``runs.submit``).

    submitted = await run_resume(ResumeRequest(run_id, decisions=[{"id": "echo", "approve": True}]), tenant=t)
    submitted.run.status                     # "succeeded", or "paused" again
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents_app import limits
from agents_app.errors import BrokerUnavailable, ResumeInvalid, RunNotPaused
from agents_app.models import Run
from agents_app.pauses import answer_as_dict, answer_problems
from agents_app.runs import dispatch, transitions
from agents_app.runs.execute import web_worker_name
from agents_app.runs.publish import run_publish
from agents_app.runs.submit import Mode, Submitted, run_start
from agents_app.selectors import run_get
from agents_app.usage.record import model_record
from infra.io_threads import db
from sessions_app.models import Tenant


@dataclass(frozen=True)
class ResumeRequest:
    """``decisions`` (``[{"id", "approve", "message"?}]``) for an approval, or ``input`` (any JSON,
    ``has_input`` saying it was given) for a question; ``mode`` and ``cancel_on_disconnect`` as
    ``RunRequest``'s."""

    run_id: str
    decisions: list[dict[str, Any]] | None = None
    input: Any = None
    has_input: bool = False
    mode: Mode = "sync"
    cancel_on_disconnect: bool = False


async def run_resume(request: ResumeRequest, *, tenant: Tenant) -> Submitted:
    """Resume the tenant's paused run (``run_resume_record``), then answer as ``run_submit`` does:
    queued at once, sync once it ended or paused again, streamed with its events."""
    slot = await limits.stream_slot(tenant=tenant) if request.mode == "stream" else None
    try:
        run = await db(run_resume_record, request, tenant=tenant)
    except BaseException:
        await limits.release(slot)
        raise
    if request.mode == "queued":
        await limits.release(slot)
        return Submitted(run, True)
    stream = request.mode == "stream"
    return await run_start(run, stream=stream, slot=slot, wait=None, cancel_on_disconnect=request.cancel_on_disconnect)


def run_resume_record(request: ResumeRequest, *, tenant: Tenant) -> Run:
    """``paused → running`` (held by this process) or ``→ queued`` (published once committed, or
    once its tenant's turn comes: ``runs.dispatch``), with the answer. Raises ``Http404`` (not the
    tenant's run), ``RunNotPaused`` (also when another resume or a cancel won), ``ResumeInvalid``
    (naming each request id missing, unknown or decided twice), ``LimitReached`` (concurrent runs,
    sync) and ``BrokerUnavailable`` (the run stays paused)."""
    run = run_get(tenant=tenant, run_id=request.run_id)
    if run.status != Run.Status.PAUSED:
        raise RunNotPaused(str(run.pk), run.status)
    problems = answer_problems(run.pause or {}, decisions=request.decisions, has_input=request.has_input)
    if problems:
        raise ResumeInvalid(problems)
    answer = answer_as_dict(decisions=request.decisions, given_input=request.input, has_input=request.has_input)
    queued = request.mode == "queued"
    if not queued:
        limits.concurrent_runs_check(tenant=tenant)
    held = queued and dispatch.held_for(tenant)
    if not transitions.resume(run, answer=answer, worker=None if queued else web_worker_name(), held=held):
        status = Run.objects.filter(pk=run.pk).values_list("status", flat=True).first() or "gone"
        raise RunNotPaused(str(run.pk), status)
    resumed = Run.objects.select_related("agent", "session__tenant").get(pk=run.pk)
    model_record(resumed)
    if queued:
        dispatch.queued_on_commit(resumed, lambda: _publish(resumed))
    return resumed


def _publish(run: Run) -> None:
    """Hand the resumed run to the broker; if it is down, the run waits paused again (503)."""
    try:
        run_publish(run_id=str(run.pk))
    except BrokerUnavailable:
        transitions.unresume(run, worker=None)
        raise
