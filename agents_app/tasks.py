"""Celery tasks: each takes ids, calls a service and decides only when to run again."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from agents_app import lifecycle, webhooks
from agents_app.lifecycle import Step

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="agents_app.tasks.execute_run", acks_late=True, reject_on_worker_lost=True)
def execute_run(self, run_id: str, busy: int = 0, unavailable: int = 0) -> str:
    """Execute a queued run once. A busy session or a failing store sends it back to the broker
    with a delay, so the worker slot serves other runs meanwhile."""
    try:
        # A task the broker delivers again lost its worker: claim it first, so that it counts.
        redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
        step = lifecycle.run_execute(run_id=run_id, worker=self.request.hostname or "worker", redelivered=redelivered)
    except SoftTimeLimitExceeded:
        limit = settings.CELERY_TASK_SOFT_TIME_LIMIT
        lifecycle.run_fail_if_running(run_id=run_id, error=f"timeout: the run took longer than {limit:g} s")
        return Step.DONE.value
    if step is Step.BUSY:
        lifecycle.run_publish(run_id=run_id, countdown=lifecycle.busy_delay(busy), busy=busy + 1)
    elif step is Step.UNAVAILABLE:
        if unavailable >= settings.AK_RUN["UNAVAILABLE_RETRIES"]:
            lifecycle.run_fail_if_queued(run_id=run_id, error="the session store stayed unavailable")
        else:
            delay = lifecycle.unavailable_delay(unavailable)
            lifecycle.run_publish(run_id=run_id, countdown=delay, unavailable=unavailable + 1)
    return step.value


@shared_task(name="agents_app.tasks.sweep_runs")
def sweep_runs() -> dict[str, int]:
    """Periodic (celery beat): take back runs whose worker died; see ``lifecycle.run_sweep``."""
    report = lifecycle.run_sweep()
    if report.requeued or report.failed or report.republished:
        logger.warning("sweep: %s", report)
    return {"requeued": report.requeued, "failed": report.failed, "republished": report.republished}


@shared_task(name="agents_app.tasks.deliver_webhook", acks_late=True)
def deliver_webhook(run_id: str) -> str:
    """POST the finished run to its webhook; on failure try again later, a bounded number of times."""
    outcome = webhooks.webhook_deliver(run_id=run_id)
    if outcome.retry_in is not None:
        deliver_webhook.apply_async((run_id,), countdown=outcome.retry_in)
    return outcome.status
