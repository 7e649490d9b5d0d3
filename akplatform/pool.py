"""The worker's pool: Celery's threads pool, with its threads started as the worker starts.

``CELERY_WORKER_POOL=threads`` (the default) is this pool. Each task's thread hands its run to
the process's event loop and waits for its end (``agents_app.tasks``). Celery's threads pool (a
``ThreadPoolExecutor``) starts a thread when a task finds none idle, in the thread that takes the
messages off the broker, and waits there until the new thread runs: under a burst, with the runs
on the loop holding the interpreter, each start held up the next message, and the last of 500
runs was claimed 0.3-0.7 s after the last was queued (about 0.1 s before it, once the threads were
started up front). Here all ``limit`` threads start with the pool; a task then wakes an idle one.
"""

from __future__ import annotations

from celery.concurrency.thread import TaskPool as CeleryThreadsPool

from akplatform.aio import start_threads


class ThreadsPool(CeleryThreadsPool):
    def on_start(self) -> None:
        super().on_start()
        start_threads(self.executor, self.limit)
