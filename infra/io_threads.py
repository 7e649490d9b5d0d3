"""Runs are asyncio tasks; what blocks runs in one small pool of threads per process.

A process carries its runs as coroutines on one event loop (a web process: the server's; a worker:
``loop_thread()``, fed by Celery's task threads), and every blocking call (the ORM, the store's
clients, the broker) goes through ``blocking`` or ``db`` to a pool of ``AK_IO_THREADS`` threads.
``db`` gives its connection back when the call returns: a process holds at most ``AK_IO_THREADS``
database connections, and none while a run awaits its model.

    reply = await db(Run.objects.filter(pk=run_id).update, status="running")
    result = loop_thread().run(some_coroutine())   # from a plain thread: waits for it on the loop
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, ClassVar, Generic, TypeVar

from django.conf import settings
from django.db import close_old_connections

from infra import logs

T = TypeVar("T")


class PerProcess(Generic[T]):
    """A value made on first use, once per process: a forked child makes its own (it has neither
    the parent's threads nor its loop)."""

    made: ClassVar[list[PerProcess[Any]]] = []

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._value: T | None = None
        self._lock = threading.Lock()
        PerProcess.made.append(self)

    def __call__(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._make()
        return self._value

    def forget(self) -> None:
        self._value = None


def _io_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=settings.AK_IO_THREADS, thread_name_prefix="ak-io")


#: The process's pool of threads for blocking calls, started on first use.
io_executor = PerProcess(_io_executor)


async def blocking(call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``call(*args, **kwargs)`` in the process's I/O pool, awaited without blocking the loop; it
    logs with the caller's log fields (its run, its request)."""
    work = partial(logs.carrying(call), *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(io_executor(), work)


def _with_connection(call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    try:
        return call(*args, **kwargs)
    finally:
        close_old_connections()  # PostgreSQL (CONN_MAX_AGE 0): back to the pool; SQLite: kept by this thread


async def db(call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``blocking`` for a call that uses the database: its connection is given back as it returns."""
    return await blocking(_with_connection, call, *args, **kwargs)


async def db_in(executor: ThreadPoolExecutor, call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``db`` in a pool of the caller's: work that must not wait behind the I/O pool's queue."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, partial(_with_connection, call, *args, **kwargs))


class LoopThread:
    """An event loop running in a daemon thread: the worker process's one loop for its runs."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(io_executor())
        self._thread = threading.Thread(target=self.loop.run_forever, name="ak-runs-loop", daemon=True)
        self._thread.start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the loop and wait for its result in the calling thread (not the loop's)."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()


#: The process's loop thread (a worker's), started on first use.
loop_thread = PerProcess(LoopThread)


def _forget_after_fork() -> None:
    for value in PerProcess.made:
        value.forget()


os.register_at_fork(after_in_child=_forget_after_fork)
