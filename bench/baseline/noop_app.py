"""The baseline of ``bench/queue.py``: a bare Celery app whose one task records when it ran.

Same broker and the same worker settings as the platform's app (late acks, prefetch 1, JSON), and
no Django, no database, no session store: what Celery itself costs per task.
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

app = Celery("noop", broker=os.environ["NOOP_BROKER_URL"])
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
    task_default_queue=os.environ.get("NOOP_QUEUE", "noop"),
    broker_connection_retry_on_startup=True,
)
_finished = redis.Redis.from_url(os.environ["NOOP_RESULTS_URL"])


@app.task(name="noop")
def noop(key: str, number: int, sent: float) -> None:
    """Do nothing but say when: HSET key number "<sent> <finished>" (times since the epoch)."""
    _finished.hset(key, number, f"{sent!r} {time.time()!r}")
