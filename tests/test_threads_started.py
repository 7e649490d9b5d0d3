"""Thread pools start their threads up front (``akplatform.aio.start_threads``): the worker's
pool (``akplatform.pool``) and each process's I/O threads. A thread started on demand holds up
whoever submitted the work (the consumer of a worker, an event loop) until it runs."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from akplatform.aio import start_threads
from akplatform.pool import ThreadsPool


def _alive() -> set[threading.Thread]:
    return set(threading.enumerate())


def test_start_threads_starts_them_all_idle() -> None:
    before = _alive()
    executor = start_threads(ThreadPoolExecutor(max_workers=6), 6)
    try:
        started = _alive() - before
        assert len(started) == 6
        # Six calls at once, each waiting for the others: served by those six, none started anew.
        together = threading.Barrier(6)
        assert all(f.result(timeout=10) is not None for f in [executor.submit(together.wait, 10) for _ in range(6)])
        assert _alive() - before == started
    finally:
        executor.shutdown()


def test_the_worker_pool_starts_its_threads_with_the_pool() -> None:
    before = _alive()
    pool = ThreadsPool(limit=12)
    assert len(_alive() - before) == 0
    pool.start()
    try:
        assert len(_alive() - before) == 12
        ran: list[threading.Thread] = []
        for outcome in [pool.apply_async(threading.current_thread, callback=ran.append) for _ in range(20)]:
            outcome.wait(timeout=10)
        assert len(ran) == 20 and set(ran) <= _alive() - before  # the tasks ran on those threads
    finally:
        pool.stop()


def test_the_settings_pool_is_this_one(settings) -> None:
    from celery.concurrency import get_implementation

    assert get_implementation(settings.CELERY_WORKER_POOL) is ThreadsPool
