"""A run executed on the event loop: claimed, run under its session's lock, its end recorded.

A worker's task claims a queued run; a sync request's run is ``running`` from the start. Either way
it is an asyncio task that holds no thread and no database connection while its adapter works. The
store's commit records the run id, so a run whose worker died after committing is replayed, not
executed again.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import socket
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from agents_app.budgets.check import budget_refuses_claim
from agents_app.compaction.queue import compaction_due, compaction_queue
from agents_app.errors import RunCancelled, RunFailed, RunTimedOut, SessionExpired, SessionPaused, run_error
from agents_app.limits import claim_over_limit
from agents_app.models import Run
from agents_app.pauses import pause_forget, pause_from_dict, resume_from_dict
from agents_app.runner import Cancellation, RunOptions, runner
from agents_app.runs import transitions
from agents_app.runs.events import RunEvents
from agents_app.runs.watch import watcher_for
from agents_app.usage.record import model_record
from infra import logs, metrics
from infra.io_threads import db
from sessions_app.selectors import session_key
from sessions_app.services import session_history_lost, session_record_commit
from sessions_app.stores.base import (
    LockLost,
    RunRevoked,
    SessionBusy,
    SessionKey,
    StoreError,
    StoreUnavailable,
    VersionConflict,
)
from sessions_app.stores.events import Event

logger = logging.getLogger(__name__)

SUCCEEDED = Run.Status.SUCCEEDED


class Step(enum.Enum):
    """What executing a run's task came to, and so what the task does next."""

    DONE = "done"  # it ended (succeeded, failed or cancelled): nothing more to do
    SKIPPED = "skipped"  # not queued (taken, finished or cancelled), or lost meanwhile: a duplicate
    BUSY = "busy"  # the session was busy: queued again, to be published later
    UNAVAILABLE = "unavailable"  # the store failed: queued again, to be published later with backoff


def worker_name(hostname: str) -> str:
    """How a run names the process that executes it: the Celery worker's name and the pid."""
    return f"{hostname}:{os.getpid()}"


def web_worker_name() -> str:
    """How a run executed inside a web request names its process."""
    return f"web@{socket.gethostname()}:{os.getpid()}"


async def run_execute(*, run_id: str, worker: str) -> Step:
    """Claim a queued run for ``worker`` and execute it (a worker's task)."""
    claimed = await db(run_claim, run_id, worker)
    if isinstance(claimed, Step):
        return claimed
    return await execute_claimed(claimed, worker=worker, wait=0)


def run_claim(run_id: str, worker: str) -> Run | Step:
    """The run claimed for ``worker``, or why not: ``DONE`` when it was queued with a cancel asked
    for (now cancelled), ``SKIPPED`` when it was not queued (taken, finished), ``BUSY`` when it put
    its tenant over its limit of concurrent runs (queued again, it waits its turn); ``DONE`` too when
    a budget of its tenant was used up since it was queued (it ends ``failed``, ``budget_exceeded``)."""
    run = transitions.claim(run_id=run_id, worker=worker)
    if run is None:
        halted = Run.objects.filter(pk=run_id, status=Run.Status.QUEUED, cancel_requested_at__isnull=False)
        cancelled = halted.only("pk", "webhook_url").first()
        return Step.DONE if cancelled is not None and transitions.cancel_queued(cancelled) else Step.SKIPPED
    # Not requeued: a cancel was asked meanwhile; it is executed, and stops at once.
    if claim_over_limit(run) and transitions.requeue(run, worker=worker, uncount=True):
        return Step.BUSY
    refused = budget_refuses_claim(
        tenant_id=run.tenant_id, agent=run.agent.name, first_attempt=run.attempts == 1 and not run.resumes
    )
    if refused is not None and transitions.requeue(run, worker=worker, uncount=True):
        return Step.DONE if transitions.fail_queued(run, error=refused) else Step.SKIPPED
    model_record(run)
    return run


async def execute_claimed(
    run: Run, *, worker: str, wait: float | None, listener: asyncio.Queue[Event] | None = None
) -> Step:
    """Execute a run ``worker`` holds (``running``) and record how it ended.

    ``wait``: how long to wait for a busy session (None: ``AK_SESSION__LOCK_WAIT``). An async run
    whose session is busy, or whose store failed, goes back to ``queued`` (``Step.BUSY``,
    ``Step.UNAVAILABLE``). A sync run records every failure and raises it for the view to answer:
    the store's errors, ``RunCancelled``, ``RunTimedOut``, ``RunFailed`` (the adapter raised). Its
    events go to the store's log, and to ``listener`` when this process streams the run.
    """
    key = session_key(run.session)
    token = logs.bind(run_id=str(run.pk), tenant=key.tenant)
    metrics.RUNS_IN_FLIGHT.inc()
    try:
        return await _execute(run, key, worker=worker, wait=wait, listener=listener)
    finally:
        metrics.RUNS_IN_FLIGHT.dec()
        logs.unbind(token)


async def _execute(
    run: Run, key: SessionKey, *, worker: str, wait: float | None, listener: asyncio.Queue[Event] | None
) -> Step:
    run_id = str(run.pk)
    events = RunEvents(runner.store, key, run_id, listener=listener)
    cancelled = Cancellation()
    watcher = watcher_for(worker)
    watcher.watch(run_id, cancelled)
    options: RunOptions = {
        "wait": wait,
        "run_id": run_id,
        "commit_id": run.commit_id,
        "cancelled": cancelled,
        "time_limit": settings.AK_RUN["TIME_LIMIT"],
        "events": events,
        "indexed": _indexed(run),
        "paused_elsewhere": _paused_elsewhere,
    }
    try:
        if run.is_resuming:
            await events.numbered_after_log()
            pause, answer = pause_from_dict(run.pause or {}), resume_from_dict(run.answer or {})
            outcome = await runner.execute_resume(run.agent, key, pause, answer, **options)
        else:  # a first attempt cannot have committed before
            outcome = await runner.execute(run.agent, key, run.message, replay=run.attempts > 1, **options)
    except Exception as exc:
        if watcher.forget(run_id):
            return Step.SKIPPED  # the sweeper gave it to another worker
        try:
            step = await db(_record_failure, run, worker=worker, exc=exc)
        except Exception as raised:  # a sync run's failure, for its request to answer
            await _ended(events, raised, kept=not _turned_away(run, raised))
            raise
        if step is Step.DONE:
            await _ended(events, exc)
        else:
            await events.close()
        return step
    if watcher.forget(run_id):
        return Step.SKIPPED  # another worker has it now: its replay finds our commit
    if outcome.replayed:  # its events were those of a lost attempt: the reply, whole
        events.started()
        events.delta(outcome.reply)
    if outcome.pause is not None:
        pause = outcome.pause.as_dict()
        return await _paused(run, events, worker=worker, pause=pause, total=outcome.commit.total)
    usage = outcome.usage.as_dict() if outcome.usage is not None else None
    await db(_record_success, run, worker=worker, result=outcome.reply, usage=usage, total=outcome.commit.total)
    if compaction_due(run.agent.config, outcome.uncovered):
        await db(compaction_queue, session_pk=run.session_id, agent_pk=run.agent_id)
    await events.end("done", {"run_id": run_id, "session_id": key.session_id, "result": outcome.reply})
    return Step.DONE


async def _paused(run: Run, events: RunEvents, *, worker: str, pause: dict[str, Any], total: int) -> Step:
    """The run paused (its pause committed): recorded ``paused``, its stream ends with ``paused``
    (the pause object). A cancel asked while it ran ends it ``cancelled`` instead (a sync run's
    request then answers ``run_cancelled``)."""
    if await db(_record_pause, run, worker=worker, pause=pause, total=total):
        await events.end("paused", pause)
        return Step.DONE
    await events.end("cancelled", {"code": "run_cancelled", "detail": "cancelled while running"})
    if not run.is_async:
        raise RunCancelled("the run was cancelled")
    return Step.DONE


def _record_pause(run: Run, *, worker: str, pause: dict[str, Any], total: int) -> bool:
    """The session's index row brought up to the commit, then ``running → paused``; False when a
    cancel was asked meanwhile: the run ends ``cancelled`` and its pause marker is cleared."""
    session_record_commit(session=run.session, total=total)
    if transitions.pause(run, worker=worker, pause=pause):
        return True
    if transitions.finish(run, worker=worker, status=Run.Status.CANCELLED, error="cancelled while running"):
        pause_forget(runner.store, session_key(run.session), str(run.pk))
    return False


async def _paused_elsewhere(run_id: str) -> bool:
    """Whether the run a session's pause marker names has not ended (paused, or resumed and not
    done): the marker then refuses other runs; otherwise it is stale."""
    return await db(run_unfinished, run_id)


def run_unfinished(run_id: str) -> bool:
    try:
        return Run.objects.filter(pk=run_id).exclude(status__in=Run.FINISHED).exists()
    except (ValueError, ValidationError):  # not a run's id (a run of the Python API records none)
        return False


def _record_success(run: Run, *, worker: str, result: str, usage: dict[str, int] | None, total: int) -> None:
    """The session's index row brought up to the commit (whoever holds the run by now: the commit
    happened), then the run's end, which queues its webhook."""
    session_record_commit(session=run.session, total=total)
    transitions.finish(run, worker=worker, status=SUCCEEDED, result=result, usage=usage)


def _indexed(run: Run) -> int:
    """The messages the index counted for the run's session when the run was recorded or claimed
    (0 when its row was read without them: nothing to compare the store with)."""
    session = run.session
    return 0 if "message_count" in session.get_deferred_fields() else session.message_count


async def _ended(events: RunEvents, exc: Exception, *, kept: bool = True) -> None:
    """The event a run that did not succeed ends with, written to its log; only given to the
    listener when the run was not ``kept`` (``_turned_away``)."""
    known = run_error(exc)
    body = {"code": "agent_failed", "detail": f"{type(exc).__name__}: {exc}"} if known is None else known[1]
    kind = "cancelled" if isinstance(exc, RunCancelled | RunRevoked) else "error"
    data = {"code": body["code"], "detail": body["detail"]}
    if kept:
        await events.end(kind, data)
    else:
        events.refused(kind, data)


def _turned_away(run: Run, exc: Exception) -> bool:
    """A sync run whose session was busy (``on_busy: "reject"``, or busy past the wait), or had a
    paused run: its request answers ``409 session_busy`` (``run_paused``) and the run is not kept
    (``transitions.withdraw``); a resume is paused again (``transitions.unresume``)."""
    return not run.is_async and isinstance(exc, SessionBusy | SessionPaused)


def _record_failure(run: Run, *, worker: str, exc: Exception) -> Step:
    """Record what ``exc`` did to the run; raise it (as the API answers it) for a sync run."""
    _count_failure(run, exc)
    in_request = not run.is_async
    if isinstance(exc, SessionExpired):  # the index follows the store; the run did not start
        session_history_lost(session=run.session, count=exc.count)
        transitions.finish(run, worker=worker, status=Run.Status.FAILED, error=f"session_expired: {exc}")
        if in_request:
            raise exc
        return Step.DONE
    if isinstance(exc, RunCancelled | RunRevoked):
        transitions.finish(run, worker=worker, status=Run.Status.CANCELLED, error="cancelled while running")
        if in_request:
            raise RunCancelled("the run was cancelled") from exc
        return Step.DONE
    if not in_request and isinstance(exc, SessionBusy | VersionConflict | LockLost | StoreUnavailable):
        # Try again later; an attempt that never reached the adapter does not count.
        logger.warning("run %s: %s; queued again", run.pk, exc)
        uncount = isinstance(exc, SessionBusy | StoreUnavailable)
        if transitions.requeue(run, worker=worker, uncount=uncount):
            return Step.BUSY if isinstance(exc, SessionBusy) else Step.UNAVAILABLE
        # A cancel came meanwhile (or the run is not ours any more): it ends here.
        error = "cancelled before it started" if uncount else "cancelled while running"
        transitions.finish(run, worker=worker, status=Run.Status.CANCELLED, error=error, started=not uncount)
        return Step.DONE
    if _turned_away(run, exc):  # not a failed run: no run at all (a resume waits again)
        if run.is_resuming:
            transitions.unresume(run, worker=worker)
        else:
            transitions.withdraw(run, worker=worker)
        raise exc
    if isinstance(exc, SessionPaused):  # a queued run: it fails, and says why
        transitions.finish(run, worker=worker, status=Run.Status.FAILED, error=f"run_paused: {exc}", started=False)
        return Step.DONE
    if isinstance(exc, RunTimedOut):
        error = f"timeout: {exc}"
    elif isinstance(exc, StoreError):
        error = f"{type(exc).__name__}: {exc}"
    else:  # the adapter failed: the run fails, the process goes on
        if settings.AK_LOG_CONTENT:
            logger.error("run %s failed", run.pk, exc_info=exc)
        else:  # its message may quote the model server's answer, or the user's words
            logger.error("run %s failed\n%s", run.pk, logs.exception_summary(exc))
        error = f"{type(exc).__name__}: {exc}"
    transitions.finish(run, worker=worker, status=Run.Status.FAILED, error=error)
    if in_request:
        if isinstance(exc, StoreError | RunTimedOut):
            raise exc
        raise RunFailed(run) from exc
    return Step.DONE


def _count_failure(run: Run, exc: Exception) -> None:
    """A store's error by its class, an adapter's by its framework; a busy session, a cancel
    and a timeout are none."""
    if isinstance(exc, StoreError):
        if not isinstance(exc, SessionBusy | RunRevoked):
            metrics.STORE_ERRORS.labels(error=type(exc).__name__).inc()
    elif not isinstance(exc, RunCancelled | RunTimedOut | SessionExpired | SessionPaused):
        metrics.ADAPTER_ERRORS.labels(framework=run.agent.framework).inc()
