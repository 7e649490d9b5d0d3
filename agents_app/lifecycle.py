"""The life of a run: executed in a request or on a worker, watched, cancelled, swept.

States: ``queued`` → ``running`` → ``succeeded`` | ``failed`` | ``cancelled`` (a queued run may be
cancelled, and a running one whose worker died goes back to ``queued``). Every change of state is
one conditional ``UPDATE`` (``WHERE status = …``), so two workers, a worker and the sweeper, or a
worker and a cancel can never both win:

- a worker *claims* a queued run (``queued → running``, attempts + 1); a duplicate delivery of
  its task finds it no longer queued and does nothing, so a finished run never runs again;
- while it runs, the worker writes ``heartbeat_at`` every ``AK_RUN__HEARTBEAT`` seconds and reads
  ``cancel_requested_at``; a cancel, or finding that the run is no longer its own, stops the
  adapter at its next ``await`` and nothing is committed;
- the store commit records the run id (see ``SessionStore.commit``): a run whose worker died
  after committing but before saying so is replayed from the store, not executed again;
- the sweeper queues again a running run whose heartbeat lapsed, up to ``MAX_ATTEMPTS``.

Claiming late. Over a store that can revoke a run (``SessionStore.can_revoke``), a first attempt
is read, not claimed, and executed; its first beat, after ``CLAIM_AFTER`` seconds, claims it, and
a run that ends sooner goes from ``queued`` to its end in one write (its finish is its claim). What
the claim guarded is kept: the session's lock keeps other deliveries of the task out while it
executes, and they find its commit in the store (the lookup rides on the lock's round trip) and
replay it; a cancel revokes the run in the store before it cancels a queued run, so a run that
was executing unclaimed has its commit refused (``RunRevoked``), or, if it committed first, is
left to finish. A run that ran before, or whose task the broker delivers again, is claimed first,
so that its attempts count.

A queued run whose session is busy does not wait on a worker: it tries the lock once, goes back
to ``queued`` and is published again with a short, growing, jittered delay, so a worker slot
serves other sessions meanwhile.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import random
import socket
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from agents_app.models import Run
from agents_app.runner import Cancellation, Every, RunCancelled, Runner, RunOutcome, RunTimedOut
from akplatform import sql
from sessions_app.selectors import session_key
from sessions_app.services import session_record_commit_statement
from sessions_app.stores import get_store
from sessions_app.stores.base import (
    LockLost,
    RunRevoked,
    SessionBusy,
    SessionKey,
    StoreError,
    StoreUnavailable,
    VersionConflict,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: The runner of requests and workers: its loop serves one run, so store calls need no threads.
runner = Runner(offload=False)


class BrokerUnavailable(Exception):
    """The task could not be handed to the broker."""


class Step(enum.Enum):
    """What a worker did with a run's task, and so what the task does next."""

    DONE = "done"  # finished (succeeded, failed or cancelled): nothing more to do
    SKIPPED = "skipped"  # not queued (already taken, finished or cancelled): a duplicate delivery
    BUSY = "busy"  # the session was busy: queued again, publish later
    UNAVAILABLE = "unavailable"  # the store failed: queued again, publish later with backoff


def config() -> dict[str, Any]:
    return settings.AK_RUN


def web_worker_name() -> str:
    """How a run executed inside a web request names where it ran."""
    return f"web@{socket.gethostname()}:{os.getpid()}"


# --- handing runs to the broker --------------------------------------------------------------------


def run_publish(
    *, run_id: str, countdown: float | None = None, busy: int = 0, unavailable: int = 0, stamp: bool = True
) -> None:
    """Hand the run's task to the broker; raises ``BrokerUnavailable``. ``stamp``: record when
    (a new run carries its ``enqueued_at`` from its creation)."""
    from agents_app.tasks import execute_run

    if stamp:
        Run.objects.filter(pk=run_id).update(enqueued_at=timezone.now())
    run_id = str(run_id)
    kwargs = {name: n for name, n in (("busy", busy), ("unavailable", unavailable)) if n}
    try:
        # The reprs are given, not made: Celery's saferepr of the arguments cost more than the rest.
        execute_run.apply_async((run_id,), kwargs, countdown=countdown, argsrepr=run_id, kwargsrepr=repr(kwargs))
    except Exception as exc:  # kombu raises OperationalError, socket errors, ... depending on transport
        raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc


def publish_or_fail(run_id: str) -> None:
    """Publish a new run; if the broker is down, fail the run and raise ``BrokerUnavailable``.

    The run keeps no idempotency key then, so the client's retry with the same key makes a new one.
    """
    try:
        run_publish(run_id=run_id, stamp=False)
    except BrokerUnavailable as exc:
        Run.objects.filter(pk=run_id, status=Run.Status.QUEUED).update(
            status=Run.Status.FAILED,
            error=f"broker unavailable: {exc}",
            finished_at=timezone.now(),
            idempotency_key=None,
        )
        raise


def busy_delay(busy: int) -> float:
    """Delay before a run whose session was busy tries again: doubling to 8x, with jitter."""
    base = config()["BUSY_RETRY"] * min(2**busy, 8)
    return base * random.uniform(0.5, 1.5)


def unavailable_delay(unavailable: int) -> float:
    return min(2.0**unavailable, 60.0) * random.uniform(0.5, 1.0)


# --- executing -------------------------------------------------------------------------------------


def run_claim(*, run_id: str, worker: str) -> Run | None:
    """Take a queued run (``queued → running``) and read it with its agent, session and tenant,
    in one statement; None if it is not queued any more (or a cancel was asked for)."""
    now = sql.prep(Run, "started_at", timezone.now())
    run = sql.update_returning(
        Run,
        "status = %s, worker = %s, started_at = %s, heartbeat_at = %s, attempts = attempts + 1",
        [Run.Status.RUNNING, worker, now, now],
        related=("agent", "session", "tenant"),
        id=run_id,
        status=Run.Status.QUEUED,
        cancel_requested_at__isnull=True,
    )
    if run is not None:
        run.session.tenant = run.tenant  # the same row: spare the query session_key would make
    return run


#: What a worker reads of a queued run (``run_read``): what executing and finishing it use.
_EXECUTED_FIELDS = (
    *("message", "status", "is_async", "attempts", "started_at", "cancel_requested_at", "webhook_url"),
    *("agent__name", "agent__framework", "agent__config", "session__session_id", "tenant__slug"),
)


def run_read(*, run_id: str) -> Run | None:
    """The queued run with its agent, session and tenant, in one statement; None if not queued."""
    run = sql.fetch(
        Run, related=("agent", "session", "tenant"), only=_EXECUTED_FIELDS, id=run_id, status=Run.Status.QUEUED
    )
    if run is not None:
        run.session.tenant = run.tenant
    return run


def claims_late() -> bool:
    """Whether a worker executes a first attempt before claiming it (see the module's docstring):
    only over a store that can revoke a run, so that a cancel still wins against its commit."""
    return config()["CLAIM_AFTER"] > 0 and get_store().can_revoke


def run_execute(*, run_id: str, worker: str, redelivered: bool = False) -> Step:
    """Execute a queued run on this worker. Returns what the task does next.

    A first attempt is read, not claimed, and claimed only if it runs longer than
    ``CLAIM_AFTER`` (``claims_late``). A run that ran before, or whose task the broker delivers
    again (its worker was lost), is claimed first, so that its attempts are counted.
    """
    if redelivered or not claims_late():
        run = run_claim(run_id=run_id, worker=worker)
        if run is None:  # taken, finished, or asked to cancel while the store could not revoke it
            asked = Run.objects.filter(pk=run_id, status=Run.Status.QUEUED, cancel_requested_at__isnull=False)
            halted = asked.only("pk", "webhook_url").first()
            if halted is not None and _cancel_queued(halted, error="cancelled before it started"):
                return Step.DONE
    else:
        run = run_read(run_id=run_id)
        if run is not None and run.cancel_requested_at is not None:
            try:
                if _revoke(run):  # else it committed, by an earlier delivery: replayed below
                    _cancel_queued(run, error="cancelled before it started")
                    return Step.DONE
            except StoreUnavailable:
                return Step.UNAVAILABLE
        if run is not None and run.attempts:
            run = run_claim(run_id=run_id, worker=worker)
        elif run is not None:
            run.started_at = timezone.now()
    if run is None:
        return Step.SKIPPED
    return execute_taken(run, worker=worker, wait=0)


def execute_taken(run: Run, *, worker: str, wait: float | None) -> Step:
    """Execute a run this worker took and record how it ended: a claimed run (``running``,
    ``worker`` = us, as a sync run is made) or a queued one it read (``run_execute``).

    ``wait`` is how long to wait for a busy session. An async run whose session is busy goes back
    to ``queued`` (``Step.BUSY``), as it does when the store fails or its lease lapsed
    (``Step.UNAVAILABLE``); the task publishes it again later. A sync run, which a request waits
    for, records every failure on the run and raises it for the view to answer.
    """
    in_request = not run.is_async
    try:
        outcome, lost = _on_loop(_execute(run, session_key(run.session), worker, wait))
    except SessionBusy:
        if in_request:
            run_finish(run, worker=worker, status=Run.Status.FAILED, error="the session is busy")
            raise
        if run.status == Run.Status.RUNNING:
            _requeue(run, worker=worker, uncount=True)
        return Step.BUSY
    except (RunCancelled, RunRevoked) as exc:
        if run.status == Run.Status.QUEUED or _still_ours(run, worker):
            run_finish(run, worker=worker, status=Run.Status.CANCELLED, error="cancelled while running")
        if in_request:
            raise RunCancelled("the run was cancelled") from exc
        return Step.DONE
    except RunTimedOut as exc:
        run_finish(run, worker=worker, status=Run.Status.FAILED, error=f"timeout: {exc}")
        if in_request:
            raise
        return Step.DONE
    except (VersionConflict, LockLost, StoreUnavailable) as exc:
        if in_request:
            run_finish(run, worker=worker, status=Run.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
            raise
        logger.warning("run %s: %s; queued again", run.pk, exc)
        if run.status == Run.Status.RUNNING:
            _requeue(run, worker=worker, uncount=isinstance(exc, StoreUnavailable))
        return Step.UNAVAILABLE
    except StoreError as exc:
        run_finish(run, worker=worker, status=Run.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        if in_request:
            raise
        return Step.DONE
    except Exception as exc:  # the adapter failed: the run fails, the worker goes on
        logger.exception("run %s failed", run.pk)
        run_finish(run, worker=worker, status=Run.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        if in_request:
            raise
        return Step.DONE
    if lost:
        return Step.SKIPPED  # the sweeper gave it to another worker, which replays our commit
    run_finish(run, worker=worker, status=Run.Status.SUCCEEDED, result=outcome.reply, total=outcome.commit.total)
    return Step.DONE


_loops = threading.local()


def _on_loop(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to its end on this thread's event loop, kept from one run to the next (a new
    loop and thread per run, as ``async_to_sync`` makes them, cost ~0.4 ms: more than the store)."""
    loop = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = _loops.loop = asyncio.new_event_loop()
    return loop.run_until_complete(work)


def close_thread_loop() -> None:
    """Close this thread's event loop (for a thread that ends; the next run makes a new one)."""
    loop = getattr(_loops, "loop", None)
    if loop is not None and not loop.is_closed():
        loop.close()


async def _execute(run: Run, key: SessionKey, worker: str, wait: float | None) -> tuple[RunOutcome, bool]:
    """The run under a watcher that beats the heartbeat and turns a cancel into ``cancelled``.

    Returns the outcome and whether the run was lost meanwhile (the sweeper gave it to another)."""
    cancelled = Cancellation()
    lost = False
    unclaimed = run.status == Run.Status.QUEUED

    async def watch() -> bool:
        nonlocal lost
        try:
            if run.status == Run.Status.QUEUED:  # the first beat of a run read unclaimed claims it
                ours = await _claim_late_in_thread(run.pk, worker, run.started_at)
                if ours:
                    run.status, run.worker, run.attempts = Run.Status.RUNNING, worker, run.attempts + 1
                cancel = not ours  # cancelled meanwhile: nothing else can take a run we hold the lock of
            else:
                ours, cancel = await _beat_in_thread(run.pk, worker)
                lost = not ours
        except Exception:  # the database blinked: the next beat tries again
            logger.warning("run %s: heartbeat failed", run.pk, exc_info=True)
            return True
        if ours and not cancel:
            return True
        cancelled.set()
        return False

    beat = config()["HEARTBEAT"]
    watcher = Every(beat, watch, first=min(config()["CLAIM_AFTER"], beat) if unclaimed else None)
    try:
        outcome = await runner.execute(
            run.agent,
            key,
            run.message,
            wait=wait,
            run_id=str(run.pk),
            # A claimed first attempt cannot have committed before; a run read unclaimed may
            # have, by another delivery of its task.
            replay=run.attempts > 1 or run.status == Run.Status.QUEUED,
            cancelled=cancelled,
            time_limit=config()["TIME_LIMIT"],
        )
    finally:
        await watcher.stop()
    return outcome, lost


def _beat(run_id: Any, worker: str) -> tuple[bool, bool]:
    """Write the heartbeat; return (the run is still ours, a cancel was asked for).

    Runs in a thread of the loop's executor, on that thread's own connection, closed after each
    beat (one every few seconds) so that no connection outlives its run unwatched."""
    try:
        rows = Run.objects.filter(pk=run_id, status=Run.Status.RUNNING, worker=worker)
        ours = rows.update(heartbeat_at=timezone.now())
        cancel = Run.objects.filter(pk=run_id, cancel_requested_at__isnull=False).exists()
        return bool(ours), cancel
    finally:
        connection.close()


_beat_in_thread = sync_to_async(_beat, thread_sensitive=False)


def _claim_late(run_id: Any, worker: str, started_at: Any) -> bool:
    """Claim a run this worker executes since ``started_at`` unclaimed (``queued → running``),
    unless a cancel came first; in a thread of the loop's executor, as ``_beat``."""
    try:
        rows = Run.objects.filter(pk=run_id, status=Run.Status.QUEUED, cancel_requested_at__isnull=True)
        now = timezone.now()
        changes = {"status": Run.Status.RUNNING, "worker": worker, "started_at": started_at, "heartbeat_at": now}
        return bool(rows.update(attempts=F("attempts") + 1, **changes))
    finally:
        connection.close()


_claim_late_in_thread = sync_to_async(_claim_late, thread_sensitive=False)


def _still_ours(run: Run, worker: str) -> bool:
    return Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING, worker=worker).exists()


def _requeue(run: Run, *, worker: str, uncount: bool) -> bool:
    """``running → queued`` if this worker still holds it. ``uncount``: the attempt never started.

    A run whose cancel came while it was taking the lock is cancelled here instead.
    """
    changes: dict[str, Any] = {"status": Run.Status.QUEUED, "worker": "", "heartbeat_at": None}
    if uncount:
        changes.update(attempts=F("attempts") - 1, started_at=None)
    mine = Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING, worker=worker)
    if mine.filter(cancel_requested_at__isnull=True).update(**changes):
        return True
    if uncount:
        mine.update(started_at=None, attempts=F("attempts") - 1)
    run_finish(run, worker=worker, status=Run.Status.CANCELLED, error="cancelled before it started")
    return False


def run_finish(
    run: Run,
    *,
    worker: str | None,
    status: str,
    result: str | None = None,
    error: str | None = None,
    total: int | None = None,
) -> bool:
    """Record how a running run ended, if ``worker`` (None: anyone) still holds it; queue its webhook.

    ``total``: the session's message count after the run's store commit. The session's index row
    is brought up to that commit whoever holds the run by now: the commit happened, and the index
    never moves backwards. On PostgreSQL both UPDATEs are one statement (a data-modifying CTE: one
    round trip, one WAL flush). Elsewhere the index row's UPDATE comes first and each commits on
    its own, with no transaction around them (on SQLite, Django's ``atomic`` held the write lock
    longer than a second commit takes): a worker that dies between them leaves a run the sweeper
    hands out again, whose replay records the same."""
    now = timezone.now()
    statement = (
        f"UPDATE {sql.table(Run)} SET status = %s, result = %s, error = %s, finished_at = %s, heartbeat_at = NULL"
    )
    params = [status, result, error, sql.prep(Run, "finished_at", now)]
    if run.status == Run.Status.QUEUED and worker is not None:
        # Read unclaimed: this write is its claim too. Its late claim may have landed unseen.
        statement += (
            ", worker = %s, started_at = COALESCE(started_at, %s),"
            " attempts = CASE WHEN status = %s THEN attempts + 1 ELSE attempts END"
            " WHERE id = %s AND (status = %s OR (status = %s AND worker = %s))"
        )
        started = sql.prep(Run, "started_at", run.started_at or now)
        params += [worker, started, Run.Status.QUEUED, sql.prep(Run, "id", run.pk), Run.Status.QUEUED]
        params += [Run.Status.RUNNING, worker]
    else:
        statement += " WHERE id = %s AND status = %s"
        params += [sql.prep(Run, "id", run.pk), Run.Status.RUNNING]
        if worker is not None:
            statement += " AND worker = %s"
            params.append(worker)
    if total is not None:
        index, index_params = session_record_commit_statement(session=run.session, total=total, at=now)
        if connection.vendor == "postgresql":
            statement, params = f"WITH index_row AS ({index}) {statement}", [*index_params, *params]
        else:
            sql.execute(index, index_params)
    done = bool(sql.execute(statement, params))
    if done:
        run.status, run.result, run.error, run.finished_at = status, result, error, now
        _after_finish(run)
    return done


def _after_finish(run: Run) -> None:
    if run.webhook_url:
        from agents_app.webhooks import webhook_queue

        webhook_queue(run_id=str(run.pk))


def run_fail_if_running(*, run_id: str, error: str) -> None:
    """End a run as failed whoever holds it (a time limit that killed its task)."""
    run = Run.objects.filter(pk=run_id).first()
    if run is not None:
        run_finish(run, worker=None, status=Run.Status.FAILED, error=error)


def run_fail_if_queued(*, run_id: str, error: str) -> None:
    """End a queued run as failed (its retries are used up)."""
    with transaction.atomic():
        if Run.objects.filter(pk=run_id, status=Run.Status.QUEUED).update(
            status=Run.Status.FAILED, error=error, finished_at=timezone.now()
        ):
            _after_finish(Run.objects.get(pk=run_id))


# --- cancel and retry ------------------------------------------------------------------------------


def run_cancel(*, run: Run) -> Run:
    """Cancel a run: a queued one never starts; a running one stops at the adapter's next check
    and commits nothing. A finished run stays as it was.

    First the request, which no claim, requeue or sweep gets past. Then, over a store that can,
    the run is revoked there: its commit is refused from now on, so a running run commits nothing
    even if it finishes before its worker's next beat, and a queued run that a worker executes
    unclaimed (``claims_late``) cannot commit either. A run that committed first is not
    cancelled: its worker is recording it as succeeded. Raises ``StoreUnavailable`` when the
    store cannot revoke now (the request stays: a queued run still never starts)."""
    now = timezone.now()
    Run.objects.filter(
        pk=run.pk, status__in=[Run.Status.QUEUED, Run.Status.RUNNING], cancel_requested_at__isnull=True
    ).update(cancel_requested_at=now)
    run.refresh_from_db(fields=["status", "cancel_requested_at"])
    if run.status == Run.Status.RUNNING and get_store().can_revoke:
        try:
            _revoke(run)  # its commit is refused from now on, or it came first
        except StoreUnavailable:  # its worker's next beat still sees the request
            logger.warning("run %s: could not revoke it in the store", run.pk)
    elif run.status == Run.Status.QUEUED and claims_late() and not _revoke(run):
        run.refresh_from_db()  # too late: a worker that executed it unclaimed committed it
        return run
    _cancel_queued(run, error="cancelled before it started", at=now)
    run.refresh_from_db()
    return run


def _revoke(run: Run) -> bool:
    """Revoke the run in the store: True unless it committed there already (a cancel too late)."""
    return get_store().revoke(session_key(run.session), str(run.pk))


def _cancel_queued(run: Run, *, error: str, at: Any = None) -> bool:
    """``queued → cancelled``, if it is still queued."""
    with transaction.atomic():
        if Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED).update(
            status=Run.Status.CANCELLED, finished_at=at or timezone.now(), error=error
        ):
            _after_finish(run)
            return True
    return False


def run_retry(*, run: Run) -> Run:
    """A new async run of a finished run's agent, session and message (the old one stays)."""
    if not run.is_finished:
        raise ValueError("only a finished run can be retried")
    with transaction.atomic():
        retry = Run.objects.create(
            tenant=run.tenant,
            session=run.session,
            agent=run.agent,
            message=run.message,
            is_async=True,
            enqueued_at=timezone.now(),
            webhook_url=run.webhook_url,
            webhook_status=Run.Webhook.PENDING if run.webhook_url else Run.Webhook.NONE,
        )
        transaction.on_commit(lambda: publish_or_fail(str(retry.pk)))
    return retry


# --- the sweeper -----------------------------------------------------------------------------------


@dataclass
class SweepReport:
    requeued: int = 0
    failed: int = 0
    republished: int = 0


def run_sweep() -> SweepReport:
    """Take back runs whose worker died, and hand forgotten queued runs to the broker again.

    A running run with no heartbeat for ``HEARTBEAT_TIMEOUT`` seconds is queued again, unless it
    has used ``MAX_ATTEMPTS`` or outlived the hard time limit: then it fails. A sync run left
    running by a web process that died fails once it outlived the hard time limit. A queued run
    not handed out for ``REQUEUE_AFTER`` seconds is published again (its claim makes duplicates
    harmless).
    """
    cfg = config()
    now = timezone.now()
    report = SweepReport()
    hard_limit = now - timedelta(seconds=cfg["TIME_LIMIT"] + 60)
    stale = Run.objects.filter(
        status=Run.Status.RUNNING, is_async=True, heartbeat_at__lt=now - timedelta(seconds=cfg["HEARTBEAT_TIMEOUT"])
    )
    fields = ("pk", "attempts", "started_at", "heartbeat_at", "cancel_requested_at", "webhook_url")
    for run in stale.only(*fields)[:500]:
        rows = Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING, heartbeat_at=run.heartbeat_at)
        if run.cancel_requested_at is not None:
            final, error = Run.Status.CANCELLED, "cancelled; its worker was lost"
        elif run.started_at and run.started_at < hard_limit:
            final, error = Run.Status.FAILED, f"timeout: the run took longer than {cfg['TIME_LIMIT'] + 60:g} s"
        elif run.attempts >= cfg["MAX_ATTEMPTS"]:
            final, error = Run.Status.FAILED, f"its worker was lost {run.attempts} times"
        else:
            if rows.update(status=Run.Status.QUEUED, worker="", heartbeat_at=None):
                logger.warning("run %s: worker lost, queued again", run.pk)
                report.requeued += 1
                _publish_quietly(str(run.pk))
            continue
        with transaction.atomic():
            if rows.update(status=final, error=error, finished_at=now, heartbeat_at=None):
                report.failed += 1
                _after_finish(run)
    orphans = Run.objects.filter(status=Run.Status.RUNNING, is_async=False, started_at__lt=hard_limit)
    for run in orphans.only("pk", "webhook_url")[:500]:
        if run_finish(run, worker=None, status=Run.Status.FAILED, error="its web process was lost"):
            report.failed += 1
    forgotten = Run.objects.filter(
        status=Run.Status.QUEUED, is_async=True, enqueued_at__lt=now - timedelta(seconds=cfg["REQUEUE_AFTER"])
    )
    for run_id in forgotten.values_list("pk", flat=True)[:500]:
        report.republished += _publish_quietly(str(run_id))
    return report


def _publish_quietly(run_id: str) -> bool:
    """Publish, leaving the run queued for the next sweep when the broker is down."""
    try:
        run_publish(run_id=run_id)
        return True
    except BrokerUnavailable as exc:
        logger.warning("run %s stays queued: %s", run_id, exc)
        return False
