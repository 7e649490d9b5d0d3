"""Celery tasks: each takes ids, calls a service and decides only when to run again.

A run is executed on the worker process's event loop (``infra.io_threads.loop_thread``); the task's
thread waits for its end, so that the broker's message is acked late, when the run has ended.
"""

from __future__ import annotations

import dataclasses
import logging

from celery import shared_task
from django.conf import settings

from agents_app import webhooks
from agents_app.budgets import alerts as budget_alerts
from agents_app.compaction.queue import compaction_done
from agents_app.compaction.summarise import session_compact
from agents_app.models import Run
from agents_app.runs import publish
from agents_app.runs.execute import Step, run_execute, worker_name
from agents_app.runs.sweep import run_sweep
from agents_app.runs.transitions import fail_queued
from agents_app.schedules.firing import schedules_fire
from infra.io_threads import loop_thread

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="agents_app.tasks.execute_run", acks_late=True, reject_on_worker_lost=True)
def execute_run(self, run_id: str, busy: int = 0, unavailable: int = 0) -> str:
    """Execute a queued run once. A busy session or a failing store sends it back to the broker
    with a delay, so the worker serves other runs meanwhile."""
    worker = worker_name(self.request.hostname or "worker")
    step = loop_thread().run(run_execute(run_id=run_id, worker=worker))
    if step is Step.BUSY:
        publish.run_republish(run_id=run_id, countdown=publish.busy_delay(busy), busy=busy + 1)
    elif step is Step.UNAVAILABLE:
        if unavailable >= settings.AK_RUN["UNAVAILABLE_RETRIES"]:
            run = Run.objects.only("pk", "webhook_url").get(pk=run_id)
            fail_queued(run, error="the session store stayed unavailable")
        else:
            delay = publish.unavailable_delay(unavailable)
            publish.run_republish(run_id=run_id, countdown=delay, unavailable=unavailable + 1)
    return step.value


@shared_task(name="agents_app.tasks.sweep_runs")
def sweep_runs() -> dict[str, int]:
    """Periodic (celery beat): take back runs whose process died; see ``runs.sweep``."""
    report = run_sweep()
    if report.requeued or report.failed or report.republished or report.expired:
        logger.warning("sweep: %s", report)
    return dataclasses.asdict(report)


@shared_task(name="agents_app.tasks.fire_schedules")
def fire_schedules() -> int:
    """Periodic (celery beat, every ``AK_SCHEDULES__CHECK_INTERVAL`` s): a queued run for each due
    time of the tenants' schedules, exactly one whatever the number of beats; see ``schedules.firing``."""
    return schedules_fire()


@shared_task(name=webhooks.DELIVER_TASK, acks_late=True)
def deliver_webhook(run_id: str) -> str:
    """POST the finished run to its webhook; on failure try again later, a bounded number of times."""
    outcome = webhooks.webhook_deliver(run_id=run_id)
    if outcome.retry_in is not None:
        webhooks.webhook_publish(run_id=run_id, countdown=outcome.retry_in)
    return outcome.status


@shared_task(name="agents_app.tasks.compact_session")
def compact_session(session_pk: int, agent_pk: int) -> str:
    """Compact a session as its agent's config asks (``agents_app.compaction``), once; a failure
    is logged and leaves the session as it was."""
    try:
        return loop_thread().run(session_compact(session_pk=session_pk, agent_pk=agent_pk))
    finally:
        compaction_done(session_pk=session_pk)


@shared_task(name=budget_alerts.DELIVER_TASK, acks_late=True)
def deliver_budget_alert(alert_id: int) -> str:
    """POST a budget's alert to its webhook; on failure try again later, a bounded number of times."""
    outcome = budget_alerts.budget_alert_deliver(alert_id=alert_id)
    if outcome.retry_in is not None:
        budget_alerts.budget_alert_publish(alert_id=alert_id, countdown=outcome.retry_in)
    return outcome.status
