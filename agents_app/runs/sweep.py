"""The sweeper (celery beat): runs whose process died, queued runs nobody took, held runs of
tenants under their cap of runs in flight (``runs.dispatch``), and paused runs nobody resumed
within ``AK_RUN__PAUSE_TTL`` (a paused run has no heartbeat: it is never "lost")."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from agents_app.errors import BrokerUnavailable
from agents_app.models import Run
from agents_app.runs import dispatch, transitions
from agents_app.runs.cancel import run_cancel_paused
from agents_app.runs.publish import run_republish

logger = logging.getLogger(__name__)

BATCH = 500


@dataclass
class SweepReport:
    requeued: int = 0
    failed: int = 0
    republished: int = 0
    released: int = 0
    expired: int = 0


def run_sweep() -> SweepReport:
    """Take back runs whose process died (no heartbeat for ``HEARTBEAT_TIMEOUT``): queued again,
    or ended when a cancel was asked for, ``MAX_ATTEMPTS`` are used or the time limit passed (a
    sync run only ends then). Queued runs not taken for ``REQUEUE_AFTER`` are published again (not
    held ones: they were never published); the held runs of tenants under their cap are released
    (what an end's release missed: a process that died in between)."""
    cfg = settings.AK_RUN
    now = timezone.now()
    report = SweepReport()
    too_old = now - timedelta(seconds=cfg["TIME_LIMIT"] + 60)
    stale = Run.objects.filter(
        status=Run.Status.RUNNING, heartbeat_at__lt=now - timedelta(seconds=cfg["HEARTBEAT_TIMEOUT"])
    )
    fields = ("pk", "is_async", "attempts", "started_at", "heartbeat_at", "cancel_requested_at", "webhook_url")
    for run in stale.only(*fields)[:BATCH]:
        if run.cancel_requested_at is not None:
            ended = transitions.abandon(run, status=Run.Status.CANCELLED, error="cancelled; its process was lost")
        elif run.started_at and run.started_at < too_old:
            error = f"timeout: the run took longer than {cfg['TIME_LIMIT'] + 60:g} s"
            ended = transitions.abandon(run, status=Run.Status.FAILED, error=error)
        elif not run.is_async:
            continue  # its request is gone with its process; it fails once it is too old
        elif run.attempts >= cfg["MAX_ATTEMPTS"]:
            error = f"its process was lost {run.attempts} times"
            ended = transitions.abandon(run, status=Run.Status.FAILED, error=error)
        else:
            if transitions.lose(run):
                logger.warning("run %s: its process was lost, queued again", run.pk)
                report.requeued += 1
                _republish(str(run.pk))
            continue
        report.failed += ended
    forgotten = Run.objects.filter(
        status=Run.Status.QUEUED,
        is_async=True,
        held=False,
        enqueued_at__lt=now - timedelta(seconds=cfg["REQUEUE_AFTER"]),
    )
    for run_id in forgotten.values_list("pk", flat=True)[:BATCH]:
        report.republished += _republish(str(run_id))
    for tenant_id in dispatch.tenants_with_held_runs(limit=BATCH):
        report.released += dispatch.runs_release(tenant_id=tenant_id)
    expired = Run.objects.filter(status=Run.Status.PAUSED, paused_at__lt=now - timedelta(seconds=cfg["PAUSE_TTL"]))
    for run in expired.only("pk", "webhook_url", "status")[:BATCH]:
        error = f"expired: not resumed within {cfg['PAUSE_TTL']:g} s"
        report.expired += run_cancel_paused(run=run, error=error)
    return report


def _republish(run_id: str) -> bool:
    """Publish again, leaving the run queued for the next sweep when the broker is down."""
    try:
        run_republish(run_id=run_id)
        return True
    except BrokerUnavailable as exc:
        logger.warning("run %s stays queued: %s", run_id, exc)
        return False
