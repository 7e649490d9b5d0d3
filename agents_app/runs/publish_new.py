"""A new queued run handed to the broker, or failed when the broker refuses it (its client is
answered 503 and retries). Apart from ``runs.publish`` because it needs ``runs.transitions``,
which reaches ``runs.publish`` through ``runs.dispatch``."""

from __future__ import annotations

from agents_app.errors import BrokerUnavailable
from agents_app.models import Run
from agents_app.runs import transitions
from agents_app.runs.publish import run_publish


def publish_or_fail(run: Run) -> None:
    """Publish a new run; if the broker is down, fail the run (its idempotency key freed, so the
    client's retry makes a new one) and raise ``BrokerUnavailable``."""
    try:
        run_publish(run_id=str(run.pk))
    except BrokerUnavailable as exc:
        transitions.fail_queued(run, error=f"broker unavailable: {exc}", forget_idempotency_key=True)
        raise
