"""What the benchmarks share: Django set-up, the services they run against, and statistics.

Importing this module puts the repository root on ``sys.path`` and sets Django up, so a script
run as ``python bench/<name>.py`` may import the project's modules right after importing it.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bootstrap() -> None:
    """Make the project importable and configured, as ``manage.py`` does. The bench folder goes
    behind the standard library on ``sys.path``: ``bench/queue.py`` must not hide its ``queue``."""
    here = Path(__file__).resolve().parent
    if sys.path and Path(sys.path[0] or ".").resolve() == here:
        sys.path.append(sys.path.pop(0))
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akplatform.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")  # a bench process of its own; what it starts says otherwise
    import django

    django.setup()


_bootstrap()

from sessions_app.stores.base import Message  # noqa: E402 - needs the project on sys.path
from tests import services  # noqa: E402

DEFAULT_REDIS_PORT = 6379


# --- services ------------------------------------------------------------------------------------


@contextmanager
def redis_url(log: Log) -> Iterator[str]:
    """The machine's Redis on 6379 when it answers, else a redis-server of our own (stopped after)."""
    if services.reachable("127.0.0.1", DEFAULT_REDIS_PORT):
        log(f"redis: using the server on 127.0.0.1:{DEFAULT_REDIS_PORT}")
        yield f"redis://127.0.0.1:{DEFAULT_REDIS_PORT}/0"
        return
    if services.install_redis_server() is None:
        raise SystemExit("Redis is neither running on 127.0.0.1:6379 nor installable: apt-get install redis-server")
    with tempfile.TemporaryDirectory(prefix="ak-bench-redis-") as directory:
        server = services.redis_server(Path(directory)).start()
        log(f"redis: started redis-server on 127.0.0.1:{server.port}")
        try:
            yield f"redis://127.0.0.1:{server.port}/0"
        finally:
            server.stop()


@contextmanager
def moto_url(log: Log) -> Iterator[str]:
    """moto's DynamoDB server on a free port, stopped on exit. Sets dummy AWS credentials."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with tempfile.TemporaryDirectory(prefix="ak-bench-moto-") as directory:
        started = time.perf_counter()
        server = services.moto_server(Path(directory)).start(timeout=60)
        log(f"dynamodb: started tests.dynamodb_server at {server.url} in {time.perf_counter() - started:.1f} s")
        try:
            yield server.url
        finally:
            server.stop()


def group_cpu_seconds(groups: Sequence[int]) -> tuple[float, float]:
    """CPU seconds (user + system) that the live processes of these process groups have used so
    far, read from ``/proc`` (Linux): (the groups' leaders' main threads, all the rest). A Celery
    worker started in a session of its own leads its group, and its main thread is the broker's
    consumer (it takes messages, hands them to the pool and acks them); the rest is where the
    tasks run: the ``threads`` pool's threads (and, on the platform, its run loop and I/O threads),
    or a ``prefork`` pool's processes. A process's own figure counts its threads that ended too."""
    ticks, wanted = os.sysconf("SC_CLK_TCK"), set(groups)
    leaders = others = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(f"/proc/{entry}/stat")
            if int(fields[2]) not in wanted:  # pgrp; then utime and stime at 11 and 12
                continue
            used = int(fields[11]) + int(fields[12])
            if int(entry) in wanted:
                main = _stat_fields(f"/proc/{entry}/task/{entry}/stat")
                main_used = int(main[11]) + int(main[12])
                leaders += main_used
                others += used - main_used
            else:
                others += used
        except OSError:  # it ended meanwhile
            continue
    return leaders / ticks, others / ticks


def _stat_fields(path: str) -> list[str]:
    """The fields of a ``/proc`` ``stat`` file after the command's name, from the state on."""
    with open(path) as stat:
        return stat.read().rsplit(")", 1)[1].split()


def group_cpu_since(groups: Sequence[int], before: tuple[float, float]) -> tuple[float, float]:
    """What ``group_cpu_seconds`` adds up to now less what it did at ``before``."""
    leaders, others = group_cpu_seconds(groups)
    return leaders - before[0], others - before[1]


def run_clients(
    work: Callable[[int, float], None], clients: int, *, warm: Callable[[int], None] | None = None
) -> tuple[float, float]:
    """Run ``work(n, released)`` for ``n`` in ``range(clients)``, each in a forked process, all
    released together (``released``: ``time.time()`` then), as that many web processes would send
    requests; threads of one process would take turns on its GIL. Each first runs ``warm(n)``,
    unmeasured: a web process serves many requests, so its imports are done and its connections
    open. Returns when they were released and the CPU seconds they used from then on.

    Fork before opening connections: the caller's database and broker connections are not
    shared with the children (Django and kombu open their own in each)."""
    context = multiprocessing.get_context("fork")
    ready = context.Barrier(clients + 1)
    cpu = context.Array("d", clients)

    def client(n: int) -> None:
        if warm is not None:
            warm(n)
        ready.wait()
        began = time.process_time()
        work(n, time.time())
        cpu[n] = time.process_time() - began

    processes = [context.Process(target=client, args=(n,), daemon=True) for n in range(clients)]
    for process in processes:
        process.start()
    ready.wait(timeout=120)
    started = time.time()
    for process in processes:
        process.join()
    failed = [p.exitcode for p in processes if p.exitcode]
    if failed:
        raise SystemExit(f"{len(failed)} client processes failed (exit codes {failed})")
    return started, sum(cpu)


# --- data ----------------------------------------------------------------------------------------


def unique_tenant(prefix: str) -> str:
    """A tenant no other bench run uses, so keys never collide and cleanup is exact."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def message(role: str, number: int, *, agent: str = "bench", size: int = 200) -> Message:
    """A message of about ``size`` bytes of content, numbered so that no two are alike."""
    head = f"{role} message {number}: "
    return Message(role=role, content=head + "x" * max(0, size - len(head)), agent=agent)


def exchange(number: int, *, agent: str = "bench") -> list[Message]:
    """What one run appends: the user's prompt and the assistant's reply."""
    return [message("user", number, agent=agent, size=120), message("assistant", number, agent=agent, size=400)]


# --- statistics and output -----------------------------------------------------------------------


class Log:
    """Progress lines on stderr, so stdout holds only the results."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def __call__(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (0..1) of ``values``, by linear interpolation."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table with aligned columns (numbers right-aligned)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str], align: bool) -> str:
        parts = [c.rjust(w) if align and _numeric(c) else c.ljust(w) for c, w in zip(cells, widths, strict=True)]
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers, False), rule, *(line(r, True) for r in rows)])


def _numeric(cell: str) -> bool:
    return cell.replace(",", "").replace(".", "").replace("x", "").strip().isdigit()
