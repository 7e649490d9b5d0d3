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
from typing import Any, Final

from celery import current_app
from django.conf import settings
from django.db.models import F, QuerySet

from agents_app import outbound
from agents_app.models import Run
from agents_app.runs.output import RunOutput

logger = logging.getLogger(__name__)

DELIVER_TASK = "agents_app.tasks.deliver_webhook"
SIGNATURE_HEADER = "X-AK-Signature"
TIMESTAMP_HEADER = "X-AK-Timestamp"
#: The ends of a delivery, as ``Run.Webhook`` and ``BudgetAlert.Delivery`` both name them.
DELIVERED: Final = Run.Webhook.DELIVERED.value
FAILED: Final = Run.Webhook.FAILED.value


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
    return webhook_post(
        Run.objects.filter(pk=run.pk),
        url=run.webhook_url,
        secret=run.tenant.webhook_secret,
        body=webhook_payload(run),
        headers={"X-AK-Run-Id": str(run.pk)},
        attempts=run.webhook_attempts,
    )


def webhook_post(
    rows: QuerySet[Any], *, url: str, secret: str, body: bytes, headers: dict[str, str], attempts: int
) -> Delivery:
    """One signed POST of ``body`` to ``url`` (through ``outbound``: public addresses only), with
    ``headers`` besides the signature's, after ``attempts`` made before. Its outcome is written on
    ``rows``, the one row (a ``Run``, a ``BudgetAlert``) whose ``webhook_status`` ("delivered",
    "failed"), ``webhook_error`` and ``webhook_attempts`` track it; whether and when to try again
    (``AK_RUN__WEBHOOK_*``)."""
    cfg = settings.AK_RUN
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "ak-platform-webhook/1",
        **headers,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: webhook_sign(secret=secret, timestamp=timestamp, body=body),
    }
    try:
        target = outbound.resolve(url)
    except outbound.Refused as exc:
        rows.update(webhook_status=FAILED, webhook_error=str(exc))
        return Delivery("refused")
    rows.update(webhook_attempts=F("webhook_attempts") + 1)
    attempts += 1
    try:
        answer = outbound.post_to(target, body, headers=headers, timeout=cfg["WEBHOOK_TIMEOUT"])
        error = "" if 200 <= answer.status < 300 else f"HTTP {answer.status}"
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    if not error:
        rows.update(webhook_status=DELIVERED, webhook_error="")
        return Delivery("delivered")
    if attempts >= cfg["WEBHOOK_MAX_ATTEMPTS"]:
        rows.update(webhook_status=FAILED, webhook_error=error)
        return Delivery("failed")
    rows.update(webhook_error=error)
    return Delivery("retrying", retry_in=min(cfg["WEBHOOK_RETRY"] * 2 ** (attempts - 1), 3600))
