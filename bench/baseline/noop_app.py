"""The baseline of ``bench/queue.py``: a bare Celery app whose one task waits, then records when.

The task sleeps as long as the platform's ``echo`` agent awaits its model (``delay`` s, with
``time.sleep``: the task's thread waits, as a platform task thread waits for its run on the event
loop), then says when it finished. Same broker and the same worker settings as the platform's app
(Celery's ``threads`` pool, late acks, prefetch 1, JSON): ``bench/queue.py`` sets the pool and
its concurrency (``NOOP_POOL``, ``NOOP_CONCURRENCY``) to the platform's ``CELERY_WORKER_POOL``
and ``CELERY_WORKER_CONCURRENCY``, so a plain ``celery -A noop_app worker`` starts as the
platform's worker does. No Django, no database, no session store: what Celery itself costs per
task that waits as long as a run.
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
    worker_pool=os.environ.get("NOOP_POOL", "threads"),
    worker_concurrency=int(os.environ.get("NOOP_CONCURRENCY", "500")),
    task_serializer="json",
    accept_content=["json"],
    task_default_queue=os.environ.get("NOOP_QUEUE", "noop"),
    broker_connection_retry_on_startup=True,
)
_finished = redis.Redis.from_url(os.environ["NOOP_RESULTS_URL"])


@app.task(name="wait")
def wait(key: str, number: int, sent: float, delay: float) -> None:
    """Sleep ``delay`` s, then say when: HSET key number "<sent> <finished>" (times since the epoch)."""
    if delay:
        time.sleep(delay)
    _finished.hset(key, number, f"{sent!r} {time.time()!r}")
