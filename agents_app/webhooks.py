"""Webhooks: a finished async run is POSTed to the URL its request named, signed per tenant.

``X-AK-Signature: sha256=<hex>`` is the HMAC-SHA256 under the tenant's ``webhook_secret`` of
``<X-AK-Timestamp>.<body>`` (``webhook_verify`` checks it and the timestamp's age). A delivery that
fails is tried again with a doubling delay, ``AK_RUN__WEBHOOK_MAX_ATTEMPTS`` times in all.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass

from celery import current_app
from django.conf import settings
from django.db.models import F

from agents_app import outbound
from agents_app.models import Run
from agents_app.runs.output import RunOutput

logger = logging.getLogger(__name__)

DELIVER_TASK = "agents_app.tasks.deliver_webhook"
SIGNATURE_HEADER = "X-AK-Signature"
TIMESTAMP_HEADER = "X-AK-Timestamp"


def webhook_sign(*, secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_verify(*, secret: str, timestamp: str, body: bytes, signature: str, tolerance: float = 300) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        fresh = abs(time.time() - int(timestamp)) <= tolerance
    except ValueError:
        return False
    return fresh and hmac.compare_digest(webhook_sign(secret=secret, timestamp=timestamp, body=body), signature)


def webhook_publish(*, run_id: str, countdown: float | None = None) -> None:
    """Hand the delivery task to the broker (by name: the tasks module calls this one)."""
    try:
        current_app.send_task(DELIVER_TASK, (run_id,), countdown=countdown)
    except Exception:  # broker down: the run is finished and recorded; the webhook stays pending
        logger.warning("webhook of run %s stays pending: broker unavailable", run_id)


@dataclass(frozen=True)
class Delivery:
    status: str
    retry_in: float | None = None


def webhook_payload(run: Run) -> bytes:
    return json.dumps(RunOutput(run).data, separators=(",", ":")).encode()


def webhook_deliver(*, run_id: str) -> Delivery:
    """Try one delivery; say whether and when to try again."""
    run = Run.objects.select_related("tenant", "agent", "session").filter(pk=run_id).first()
    if run is None or not run.webhook_url or run.webhook_status == Run.Webhook.DELIVERED:
        return Delivery("nothing to do")
    cfg = settings.AK_RUN
    body = webhook_payload(run)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "ak-platform-webhook/1",
        "X-AK-Run-Id": str(run.pk),
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: webhook_sign(secret=run.tenant.webhook_secret, timestamp=timestamp, body=body),
    }
    try:
        target = outbound.resolve(run.webhook_url)
    except outbound.Refused as exc:
        Run.objects.filter(pk=run.pk).update(webhook_status=Run.Webhook.FAILED, webhook_error=str(exc))
        return Delivery("refused")
    Run.objects.filter(pk=run.pk).update(webhook_attempts=F("webhook_attempts") + 1)
    attempts = run.webhook_attempts + 1
    try:
        answer = outbound.post_to(target, body, headers=headers, timeout=cfg["WEBHOOK_TIMEOUT"])
        error = "" if 200 <= answer.status < 300 else f"HTTP {answer.status}"
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    if not error:
        Run.objects.filter(pk=run.pk).update(webhook_status=Run.Webhook.DELIVERED, webhook_error="")
        return Delivery("delivered")
    if attempts >= cfg["WEBHOOK_MAX_ATTEMPTS"]:
        Run.objects.filter(pk=run.pk).update(webhook_status=Run.Webhook.FAILED, webhook_error=error)
        return Delivery("failed")
    Run.objects.filter(pk=run.pk).update(webhook_error=error)
    return Delivery("retrying", retry_in=min(cfg["WEBHOOK_RETRY"] * 2 ** (attempts - 1), 3600))
