"""Handing a run's id to the broker. The task is sent by name: this module needs no task object.
(A new run the broker refuses is failed by ``runs.publish_new``.)"""

from __future__ import annotations

import random

from celery import current_app
from django.conf import settings
from django.utils import timezone

from agents_app.errors import BrokerUnavailable
from agents_app.models import Run

EXECUTE_TASK = "agents_app.tasks.execute_run"


def run_publish(*, run_id: str, countdown: float | None = None, busy: int = 0, unavailable: int = 0) -> None:
    """Hand the run's task to the broker; raises ``BrokerUnavailable``. ``busy`` and
    ``unavailable`` count the tries so far that found the session busy or the store down."""
    kwargs = {name: n for name, n in (("busy", busy), ("unavailable", unavailable)) if n}
    try:
        current_app.send_task(EXECUTE_TASK, (str(run_id),), kwargs, countdown=countdown)
    except Exception as exc:  # kombu raises OperationalError, socket errors, ... depending on transport
        raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc


def run_republish(*, run_id: str, countdown: float | None = None, busy: int = 0, unavailable: int = 0) -> None:
    """``run_publish`` for a run published before: records when, for the sweeper's ``REQUEUE_AFTER``."""
    Run.objects.filter(pk=run_id).update(enqueued_at=timezone.now())
    run_publish(run_id=run_id, countdown=countdown, busy=busy, unavailable=unavailable)


def busy_delay(busy: int) -> float:
    """Delay before a run whose session was busy tries again: doubling to 8x, with jitter."""
    return settings.AK_RUN["BUSY_RETRY"] * min(2**busy, 8) * random.uniform(0.5, 1.5)  # noqa: S311 - jitter


def unavailable_delay(unavailable: int) -> float:
    """Delay before a run whose store was down tries again: doubling to a minute, with jitter."""
    return min(2.0**unavailable, 60.0) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter
