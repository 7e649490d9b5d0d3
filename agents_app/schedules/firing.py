"""Each due time of a schedule becomes exactly one queued run, whatever the number of beat and
worker processes: a firing claims the due time with one conditional UPDATE (``WHERE id = … AND
next_run_at = <due>``, moving ``next_run_at`` on) in the transaction that records the run, so of
two processes that see the same due time one claims it and the other updates nothing.

After downtime a schedule fires once for the due times it missed (its ``next_run_at``), and then
goes on from the first time after now: one run on recovery, not a flood. The run is published to
the broker once the transaction commits; when the broker is down it stays ``queued`` and the
sweeper (``runs.sweep``) publishes it again at its next pass.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents_app.budgets.check import BudgetExceeded, budget_check
from agents_app.errors import BrokerUnavailable
from agents_app.models import Run, Schedule
from agents_app.runs import dispatch
from agents_app.runs.publish import run_publish
from agents_app.schedules.services import next_run
from agents_app.usage.record import model_of
from infra.limits import LimitReached
from sessions_app.services import session_open

logger = logging.getLogger(__name__)

#: Due schedules fired per check at most; the others are due at the next check.
BATCH = 200


def schedules_fire(*, now: datetime | None = None) -> int:
    """Fire every enabled schedule due at ``now`` (default: the clock's), oldest due first;
    returns how many runs this call made (those another process claimed first are not counted)."""
    now = now or timezone.now()
    due = Schedule.objects.filter(enabled=True, next_run_at__lte=now).order_by("next_run_at")
    fired = 0
    for schedule_id, due_at in due.values_list("pk", "next_run_at")[:BATCH]:
        try:
            fired += schedule_fire(schedule_id=schedule_id, due=due_at, now=now) is not None
        except Exception:  # one schedule's failure (a database error) does not stop the others'
            logger.exception("schedule %s: its firing due at %s failed; it is tried again", schedule_id, due_at)
    return fired


def schedule_fire(*, schedule_id: uuid.UUID, due: datetime, now: datetime) -> Run | None:
    """Claim the schedule's due time ``due`` and record its queued run, in one transaction; the run
    is published once it commits. None when another process claimed it first (or the schedule was
    changed or deleted meanwhile), or when no run could be made: its agent is gone (the schedule is
    then disabled) or a limit or a budget of the tenant is reached (this due time is skipped); ``last_error``
    says which."""
    schedule = Schedule.objects.select_related("tenant", "agent").filter(pk=schedule_id).first()
    if schedule is None:
        return None
    following = next_run(schedule, now=max(now, due))
    with transaction.atomic():
        claimed = Schedule.objects.filter(pk=schedule_id, enabled=True, next_run_at=due)
        if not claimed.update(next_run_at=following, last_fired_at=now, last_error=""):
            return None
        if schedule.agent.deleted_at is not None:
            error = f"its agent {schedule.agent.name!r} was deleted; the schedule is disabled"
            Schedule.objects.filter(pk=schedule_id).update(enabled=False, next_run_at=None, last_error=error)
            return None
        try:
            budget_check(tenant_id=schedule.tenant_id, agent=schedule.agent.name, now=now)
            with transaction.atomic():
                run = _record(schedule, now=now)
        except (LimitReached, BudgetExceeded) as exc:
            Schedule.objects.filter(pk=schedule_id).update(last_error=f"not run at {due.isoformat()}: {exc}")
            return None
    logger.info("schedule %s: due at %s, run %s queued", schedule_id, due.isoformat(), run.pk)
    return run


def _record(schedule: Schedule, *, now: datetime) -> Run:
    """The firing's run, ``queued`` on the schedule's session (a new one when it names none) as
    ``runs.submit`` records a queued run, published once the transaction commits (or held until
    its tenant's turn: ``runs.dispatch``)."""
    session = session_open(tenant=schedule.tenant, session_id=schedule.session_id or None)
    run = Run.objects.create(
        tenant=schedule.tenant,
        agent=schedule.agent,
        model=model_of(schedule.agent.config),
        session=session,
        message=schedule.message,
        is_async=True,
        enqueued_at=now,
        held=dispatch.held_for(schedule.tenant),
        webhook_url=schedule.webhook_url,
        webhook_status=Run.Webhook.PENDING if schedule.webhook_url else Run.Webhook.NONE,
        schedule=schedule,
    )
    dispatch.queued_on_commit(run, lambda: _publish(str(run.pk)))
    return run


def _publish(run_id: str) -> None:
    """Hand the run to the broker; when it is down the run stays queued, dated as published
    ``REQUEUE_AFTER`` ago so that the sweeper's next pass publishes it again (a firing is never
    lost to a broker that is down, unlike ``POST /run``, whose client is told 503 and retries)."""
    try:
        run_publish(run_id=run_id)
    except BrokerUnavailable as exc:
        stale = timezone.now() - timedelta(seconds=settings.AK_RUN["REQUEUE_AFTER"] + 1)
        Run.objects.filter(pk=run_id, status=Run.Status.QUEUED).update(enqueued_at=stale)
        logger.warning("run %s of a schedule stays queued for the sweeper: %s", run_id, exc)
