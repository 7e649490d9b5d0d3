"""Every change of a run's status, one function each, each one conditional ``UPDATE``.

    queued ──claim──▶ running ──finish──▶ succeeded | failed | cancelled
      │ ▲                │
      │ └── requeue ─────┤  (its worker: the session was busy, the store failed)
      │ └── lose ────────┤  (the sweeper: its heartbeat lapsed)
      │                  └── abandon ──▶ failed | cancelled  (the sweeper: out of attempts or time)
      ├── cancel_queued ──▶ cancelled
      └── fail_queued ────▶ failed
    running ──withdraw──▶ (no run)  a sync request its busy session turned away: never kept
    running ──pause──▶ paused ──resume──▶ running | queued  (a person answered; claimed once)
                         │ ▲                  │
                         │ └── unresume ──────┘  (a sync resume its busy session turned away)
                         └── cancel_paused ──▶ cancelled  (a cancel, ``on_paused``, or its TTL)

A paused run holds no lock, no worker and no heartbeat: the sweeper only ends it when it expires.

Each returns whether it changed the row (False: somebody moved the run first; nothing written). A
transition to an end queues the run's webhook once the write commits, and counts and logs the end
once per run. An end or a pause frees the run's slot in flight: its tenant's next held run goes
(``runs.dispatch``). ``run`` arguments need ``pk`` and ``webhook_url``.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone

from agents_app.models import Run
from agents_app.runs import dispatch
from agents_app.runs.ends import end_event
from agents_app.usage.record import ended_with_usage
from agents_app.webhooks import webhook_publish
from infra import metrics
from sessions_app.stores import get_store
from sessions_app.stores.base import SessionKey, StoreError

logger = logging.getLogger(__name__)

QUEUED, RUNNING, PAUSED = Run.Status.QUEUED, Run.Status.RUNNING, Run.Status.PAUSED
ENDS = frozenset(Run.FINISHED)


def claim(*, run_id: str, worker: str) -> Run | None:
    """``queued → running`` for ``worker`` (attempts + 1), unless a cancel was asked for or the run
    is held for its tenant's turn (``runs.dispatch``: a message of it in the broker is a stale
    one); the run with its agent, session and tenant, or None when it was not queued."""
    now = timezone.now()
    rows = Run.objects.filter(pk=run_id, status=QUEUED, held=False, cancel_requested_at__isnull=True)
    changes = {"status": RUNNING, "worker": worker, "started_at": now, "heartbeat_at": now}
    if not rows.update(attempts=F("attempts") + 1, **changes):
        return None
    run = Run.objects.select_related("agent", "session__tenant").get(pk=run_id)
    run.tenant = run.session.tenant
    # Its wait before its first execution, from its request: the time it was held for its tenant's
    # turn (``runs.dispatch``) counts, as does a run's sent back because its session was busy.
    if run.is_async and run.attempts == 1:
        metrics.RUN_QUEUE_WAIT.observe(max((now - run.created_at).total_seconds(), 0.0))
    return run


def requeue(run: Run, *, worker: str, uncount: bool) -> bool:
    """``running → queued``, if ``worker`` holds it and no cancel was asked for. ``uncount``: the
    attempt never reached the adapter (the session was busy, the store down), so it does not count."""
    changes: dict[str, Any] = {"status": QUEUED, "worker": "", "heartbeat_at": None}
    if uncount:
        changes.update(attempts=F("attempts") - 1, started_at=None)
    rows = Run.objects.filter(pk=run.pk, status=RUNNING, worker=worker, cancel_requested_at__isnull=True)
    return bool(rows.update(**changes))


def finish(
    run: Run,
    *,
    worker: str | None,
    status: str,
    result: str | None = None,
    error: str | None = None,
    started: bool = True,
    usage: dict[str, int] | None = None,
) -> bool:
    """``running → status`` (an end), if ``worker`` holds it (None: whoever does). ``started``
    False: the attempt never reached the adapter, so it neither counts nor shows a start.
    ``usage``: the tokens its model reported."""
    _check_end(status)
    rows = Run.objects.filter(pk=run.pk, status=RUNNING)
    if worker is not None:
        rows = rows.filter(worker=worker)
    extra: dict[str, Any] = {} if started else {"started_at": None, "attempts": F("attempts") - 1}
    if usage is not None:
        extra["usage"] = usage
    return _end(run, rows, status=status, result=result, error=error, **extra)


def cancel_queued(run: Run, *, error: str = "cancelled before it started") -> bool:
    """``queued → cancelled``; its end goes to its event log (``_log_end``)."""
    rows = Run.objects.filter(pk=run.pk, status=QUEUED)
    return _log_end(run, _end(run, rows, status=Run.Status.CANCELLED, error=error))


def fail_queued(run: Run, *, error: str, forget_idempotency_key: bool = False) -> bool:
    """``queued → failed`` (the broker refused it, or the store stayed down); its end goes to its
    event log. With ``forget_idempotency_key`` the client's retry with the same key makes a new run."""
    extra = {"idempotency_key": None} if forget_idempotency_key else {}
    rows = Run.objects.filter(pk=run.pk, status=QUEUED)
    return _log_end(run, _end(run, rows, status=Run.Status.FAILED, error=error, **extra))


def withdraw(run: Run, *, worker: str) -> bool:
    """A sync run turned away before it started (its session was busy, ``SessionBusy``): its row
    goes, as if the request had never made one, so that it counts, lists and shows nowhere as a
    run (nor as a failure), and its ``Idempotency-Key`` may be sent again. Only while ``worker``
    holds it ``running``; nothing is counted or logged as an end."""
    deleted, _ = Run.objects.filter(pk=run.pk, status=RUNNING, worker=worker).delete()
    return bool(deleted)


def pause(run: Run, *, worker: str, pause: dict[str, Any]) -> bool:
    """``running → paused`` with what it waits for, if ``worker`` holds it and no cancel was asked
    for: no worker, no heartbeat from now on. Its webhook, if it has one, is published once the
    pause is committed (with tries of its own)."""
    now = timezone.now()
    changes: dict[str, Any] = {
        "status": PAUSED,
        "pause": pause,
        "paused_at": now,
        "answer": None,
        "worker": "",
        "heartbeat_at": None,
    }
    if run.webhook_url:
        changes.update(webhook_status=Run.Webhook.PENDING, webhook_attempts=0)
    rows = Run.objects.filter(pk=run.pk, status=RUNNING, worker=worker, cancel_requested_at__isnull=True)
    if not rows.update(**changes):
        return False
    for name, value in changes.items():
        setattr(run, name, value)
    logger.info("run %s paused (%s)", run.pk, pause.get("kind"), extra={"run_id": str(run.pk)})
    dispatch.release_after(run)
    if run.webhook_url:
        transaction.on_commit(partial(webhook_publish, run_id=str(run.pk)))
    return True


def resume(run: Run, *, answer: dict[str, Any], worker: str | None, held: bool = False) -> bool:
    """``paused → running`` for ``worker`` (a sync or streamed resume, in this process), or
    ``paused → queued`` (``worker`` None: a worker takes it; ``held``: once its tenant's turn comes),
    with the person's ``answer``: one conditional UPDATE, so of two resumes (or a resume and a
    cancel) one wins."""
    now = timezone.now()
    changes: dict[str, Any] = {"answer": answer, "resumes": F("resumes") + 1, "cancel_requested_at": None}
    changes["held"] = held and worker is None
    if worker is None:
        changes.update(status=QUEUED, is_async=True, enqueued_at=now, worker="")
    else:
        changes.update(status=RUNNING, is_async=False, worker=worker, started_at=now, heartbeat_at=now)
        changes["attempts"] = F("attempts") + 1
    return bool(Run.objects.filter(pk=run.pk, status=PAUSED).update(**changes))


def unresume(run: Run, *, worker: str | None) -> bool:
    """``running → paused`` again: a sync resume that never reached the adapter (its session was
    busy), or ``queued → paused`` (``worker`` None) one the broker did not take; the answer is
    dropped, as if the resume had not been asked."""
    changes = {
        "status": PAUSED,
        "answer": None,
        "resumes": F("resumes") - 1,
        "worker": "",
        "heartbeat_at": None,
    }
    if worker is None:
        return bool(Run.objects.filter(pk=run.pk, status=QUEUED).update(**changes))
    changes["attempts"] = F("attempts") - 1
    return bool(Run.objects.filter(pk=run.pk, status=RUNNING, worker=worker).update(**changes))


def cancel_paused(run: Run, *, error: str) -> bool:
    """``paused → cancelled`` (a cancel, a new run with ``on_paused: "cancel"``, its TTL); its end
    goes to its event log."""
    rows = Run.objects.filter(pk=run.pk, status=PAUSED)
    return _log_end(run, _end(run, rows, status=Run.Status.CANCELLED, error=error))


def lose(run: Run) -> bool:
    """``running → queued`` by the sweeper, if its heartbeat is still the one the sweeper read."""
    rows = Run.objects.filter(pk=run.pk, status=RUNNING, heartbeat_at=run.heartbeat_at)
    return bool(rows.update(status=QUEUED, worker="", heartbeat_at=None))


def abandon(run: Run, *, status: str, error: str) -> bool:
    """``running → failed | cancelled`` by the sweeper, if its heartbeat is the one it read."""
    _check_end(status)
    rows = Run.objects.filter(pk=run.pk, status=RUNNING, heartbeat_at=run.heartbeat_at)
    return _log_end(run, _end(run, rows, status=status, error=error))


def _log_end(run: Run, ended: bool) -> bool:
    """``ended``; if the run ended here, not in the process that executes runs (which writes the
    ends of those it executes), its end event is appended to its log, where its streams wait.
    A store that fails now loses the event, not the end: streams find it on the run's row
    (``runs.ends``)."""
    if not ended:
        return False
    found = Run.objects.filter(pk=run.pk).values_list("tenant__slug", "session__session_id").first()
    if found is None:
        return True
    tenant, session_id = found
    run_id = str(run.pk)
    kind, data = end_event(run_id=run_id, session_id=session_id, status=run.status, result=None, error=run.error)
    try:
        get_store().append_events(SessionKey(tenant=tenant, session_id=session_id), run_id, [(kind, data)])
    except StoreError:
        logger.warning("run %s: its end was not written to its event log", run_id)
    return True


def _check_end(status: str) -> None:
    if status not in ENDS:
        raise ValueError(f"{status!r} is not how a run ends")


def _end(
    run: Run, rows: Any, *, status: str, result: str | None = None, error: str | None = None, **extra: Any
) -> bool:
    """The UPDATE of ``rows`` to an end; on success ``run`` shows it too, and its webhook, if it
    has one, is published once the end is committed."""
    changes = {"status": status, "result": result, "error": error, "finished_at": timezone.now(), **extra}
    changes["heartbeat_at"] = None
    if run.webhook_url:  # a delivery of its own (its pause may have had one)
        changes.update(webhook_status=Run.Webhook.PENDING, webhook_attempts=0)
    # The end and the tenant's usage, in one transaction (``changes`` gains the run's ``model``).
    if not ended_with_usage(rows, run_id=run.pk, changes=changes):
        return False
    for name, value in changes.items():
        if not hasattr(value, "resolve_expression"):  # an F() is the database's to compute
            setattr(run, name, value)
    _observe_end(run, status)
    dispatch.release_after(run)
    if run.webhook_url:
        transaction.on_commit(partial(webhook_publish, run_id=str(run.pk)))
    return True


def _observe_end(run: Run, status: str) -> None:
    """Count the run's end, and log it."""
    agent, framework = _agent(run)
    metrics.RUNS.labels(status=status, framework=framework).inc()
    started = None if "started_at" in run.get_deferred_fields() else run.started_at
    if started is not None:
        metrics.RUN_DURATION.labels(status=status).observe(max((run.finished_at - started).total_seconds(), 0.0))
    logger.info("run %s %s (agent %s)", run.pk, status, agent, extra={"run_id": str(run.pk)})


def _agent(run: Run) -> tuple[str, str]:
    """The run's agent's name and framework: loaded with the run by those that end most runs
    (``claim``, ``run_record``), one query for the others (the sweeper's, a cancel's, a failed
    publish's)."""
    try:
        if "agent_id" not in run.get_deferred_fields():
            return run.agent.name, run.agent.framework
        found = Run.objects.filter(pk=run.pk).values_list("agent__name", "agent__framework").first()
        return found or ("", "")
    except DatabaseError:  # the end is written; only its label is missing
        return "", ""
