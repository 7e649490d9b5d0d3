"""Regression guard: runs through the queue against bare Celery tasks that wait as long.

A run of the platform spends most of its time awaiting its model; the worker (Celery's
``threads`` pool, 500 threads, every run of the process on one event loop) is built so that
hundreds of such runs share a process. This bench measures what the platform's bookkeeping (the
Run rows, the session store's lock, load and commit, the events) costs next to a bare Celery task
that waits as long, on the same broker and the same pool. It has no goal to pass: it guards
against regressions: compare its figures with the healthy reading below.

Both sides run on the same Redis broker, with ``--workers`` worker processes (default 1) started
as deployed, ``celery -A <app> worker`` without ``--pool`` or ``--concurrency``:

- **platform**: ``celery -A akplatform worker`` with the settings' pool and concurrency
  (``CELERY_WORKER_POOL``, ``CELERY_WORKER_CONCURRENCY``: ``threads`` x 500 unless the
  environment says otherwise), late acks, prefetch 1. The runs are of an ``echo`` agent made with
  ``agent_create`` and the config ``{"delay_s": D}`` (``--delay``, default 0.5 s: a fast model),
  enqueued with ``run_record`` as ``POST /run {"async": true}`` does it (Run row committed, then
  the task published); a worker takes the session's lock, loads it, awaits the adapter, commits
  to the Redis store and records the outcome. Latency is ``finished_at - created_at`` of each Run
  row. By default every run opens a new session (``--sessions`` = ``--runs``): with fewer
  sessions than the pool has threads, a session's lock lets one turn through at a time and the
  ratio measures that serialization, not the bookkeeping (``--sessions`` makes that case).
- **baseline**: ``bench/baseline/noop_app.py``, a bare Celery task that sleeps the same D s and
  records when it finished, on the same pool with the same concurrency, late acks, prefetch 1.
  Latency: from just before it was sent to when it finished.

On both sides ``--clients`` processes enqueue (forked, as web processes are; each sends one
uncounted message first, so that like a long-lived web process it has its imports and its
connections when the clock starts). Throughput is the count over the time from the clients'
release to the last finish: with N runs, C threads per worker and W workers, the ideal is about
N / (ceil(N / (C W)) D), 1,000/s for 1,000 runs on one worker of 500 threads at D = 0.5 s.

It prints runs/s and tasks/s, their ratio, the p50 and p99 latency of each (D included; with
``--rate``, also the platform's latency less the bare task's), then stops everything it started.
The two sides take turns ``--rounds`` times (default 3) and the ratio reported is the median: on
a shared machine one round can be a third off. Beside each side's rate it prints the CPU spent
per run, read from ``/proc``: by the workers' main threads (the broker's consumers, which hand
tasks to the pool and ack them), by the rest of the workers (the pool's threads, where the tasks
run, and on the platform its run loop and I/O threads) and by the enqueuing clients. All of a
worker's runs share one process, so its CPU per run is what bounds its runs/s.

A healthy reading (2026-11, the defaults, SQLite, on a 2-core machine shared with test runs, two
runs): a ratio of 0.24 and 0.22 (rounds from 0.19 to 0.27), 58 to 83 runs/s against 230 to 400
tasks/s. The platform's one worker process is CPU-bound: 11 to 15 ms of CPU per run in the worker
(1.2 to 1.7 in its main thread, the rest in its other threads, SQLite's own work included since
it runs in-process) and 5 to 7 ms in the clients, against about 2 and 1 ms for the bare task:
5.6 to 6.8 times as much in all. With ``--rate 50`` (below both sides' capacity) the platform's
latency was 22 ms over the bare task's at p50 and 114 ms at p99. A ratio or a CPU per run clearly
worse than that, on a like machine, is a regression to look into.

    .venv/bin/python bench/queue.py [--runs 1000] [--delay 0.5] [--sessions RUNS] [--workers 1]
                                    [--clients 4] [--rate R] [--rounds 3]

Without ``--rate`` the clients enqueue as fast as they can: the throughput figure, with latencies
that include the wait behind the backlog (the platform's, enqueued more slowly, can come out below
the bare task's: its backlog is shorter). With ``--rate`` below both sides' capacity, the
latencies are those of an unsaturated queue (the throughput ratio then says nothing).

Django runs with ``DEBUG`` off, as in production. The database is a fresh SQLite file each round
(or, with ``DATABASE_URL=postgres://...``, a fresh PostgreSQL database); Redis is the one on
127.0.0.1:6379 (session store and results in database 0, broker in database 2; the bench deletes
its own keys after each round), else a redis-server of our own.
"""

from __future__ import annotations

import sys

# bench/ holds queue.py, named like the stdlib's queue: put this folder behind the stdlib.
sys.path.append(sys.path.pop(0))

import argparse
import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from _common import (
    ROOT,
    Log,
    group_cpu_seconds,
    group_cpu_since,
    median,
    percentile,
    redis_url,
    run_clients,
    table,
    unique_tenant,
)
from django.conf import settings

from tests import services

#: The agent the platform's runs are of: the ``echo`` framework with ``{"delay_s": --delay}``.
AGENT = "echo-wait"


@dataclass
class Result:
    name: str
    count: int
    seconds: float
    latencies: list[float]
    #: CPU seconds the workers' main threads (the broker's consumers), the rest of the workers
    #: (where the tasks run) and the enqueuing clients used.
    main_cpu: float = 0.0
    pool_cpu: float = 0.0
    client_cpu: float = 0.0

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    @property
    def cpu_ms(self) -> float:
        """Workers' and clients' CPU per run, in ms (the broker's and the store's servers aside)."""
        return (self.main_cpu + self.pool_cpu + self.client_cpu) / self.count * 1000

    def ms_per_item(self, seconds: float) -> str:
        return f"{seconds / self.count * 1000:.2f}"


@dataclass
class Pool:
    """What the workers of one side reported they run: pool implementation and its size."""

    implementation: str
    concurrency: int

    def __str__(self) -> str:
        return f"{self.implementation} x {self.concurrency}"


def broker_url(redis_base: str) -> str:
    """The broker both sides use: database 2 of the bench's Redis."""
    return redis_base.rsplit("/", 1)[0] + "/2"


def platform_env(directory: Path, redis: str, queue: str) -> dict[str, str]:
    database = os.environ.get("DATABASE_URL", "")
    if not database.startswith(("postgres://", "postgresql://")):
        database = f"sqlite:///{directory / 'bench.sqlite3'}"
    else:
        import psycopg

        name = f"akp_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(database.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        database = database.rsplit("/", 1)[0] + f"/{name}"
    return {
        **os.environ,
        "DATABASE_URL": database,
        "AK_VAR_DIR": str(directory / "var"),
        "AK_SESSION__TYPE": "redis",
        "AK_SESSION__REDIS__URL": redis,
        "CELERY_BROKER_URL": broker_url(redis),
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "DJANGO_SETTINGS_MODULE": "akplatform.settings",
        # As in production: no debug cursor recording every statement.
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": f"bench-{uuid.uuid4().hex}",
        "AK_SECRETS_KEY": f"bench-{uuid.uuid4().hex}",
    }


def start_workers(
    stack: ExitStack, app: str, *, env: dict[str, str], workers: int, log: Path
) -> tuple[list[int], Pool]:
    """Start the workers as deployed (the app's settings choose the pool and its concurrency;
    logging warnings only, as in production) and wait until all answer. Returns their process
    groups (each worker is its group's leader) and the pool they report."""
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    groups = []
    for i in range(workers):
        args = [*worker_args(app), f"--hostname={prefix}-{i}@%h"]
        process = services.Process(args=args, log=log.with_suffix(f".{i}.log"), cwd=ROOT, env=env).start()
        stack.callback(process.stop)
        groups.append(process.proc.pid)  # started in a session of its own: its pid is its group
    deadline = time.monotonic() + 90
    while True:
        ours = [stats["pool"] for name, stats in worker_stats(app, env).items() if name.startswith(f"{prefix}-")]
        if len(ours) >= workers:
            # "celery.concurrency.thread:TaskPool": the pool's module names it (thread, prefork, solo)
            pools = {(p["implementation"].split(":")[0].rsplit(".", 1)[-1], p["max-concurrency"]) for p in ours}
            if len(pools) > 1:
                raise SystemExit(f"{app}: the workers run different pools: {pools}")
            return groups, Pool(*pools.pop())
        if time.monotonic() > deadline:
            raise SystemExit(f"{app}: {workers} workers did not answer in 90 s; logs in {log.parent}")
        time.sleep(0.5)


def worker_stats(app: str, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """``celery inspect stats`` of the workers on ``app``'s broker, by name; {} if none answers.
    In a process of its own: a Celery app used here would leave connections that kombu's
    after-fork cleanup then closes, hanging, in the forked clients."""
    stats = [sys.executable, "-m", "celery", "-A", app, "inspect", "stats", "--timeout=1", "--json"]
    out = subprocess.run(stats, cwd=ROOT, env=env, capture_output=True, text=True).stdout
    try:
        replies = json.loads(out)
    except ValueError:
        return {}
    return replies if isinstance(replies, dict) else {}


def worker_args(app: str) -> list[str]:
    """``celery -A app worker`` as deployed: no ``--pool``, no ``--concurrency``."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


def delete_keys(url: str, *patterns: str) -> None:
    """Delete the keys of database ``url`` that match ``patterns`` (the bench's own)."""
    client = redis.Redis.from_url(url)
    try:
        for pattern in patterns:
            keys = list(client.scan_iter(match=pattern, count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
    finally:
        client.close()


def queue_keys(queue: str) -> list[str]:
    """The broker's keys for ``queue`` (its list, kombu's tables of its bindings): the bench's own."""
    return [queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]


def bench_platform(
    runs: int, sessions: int, delay: float, workers: int, clients: int, rate: float, redis_base: str, log: Log
) -> tuple[Result, Pool]:
    slug = unique_tenant("bench-")
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="ak-bench-queue-") as tmp, ExitStack() as stack:
        stack.callback(delete_keys, redis_base, f"ak:{{{slug}:*", f"ak:{{{slug}-warm:*")
        stack.callback(delete_keys, broker_url(redis_base), *queue_keys(queue))
        directory = Path(tmp)
        env = platform_env(directory, redis_base, queue)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        groups, pool = start_workers(stack, "akplatform", env=env, workers=workers, log=directory / "w")
        log(f"platform: {workers} workers ({pool}) ready; enqueueing {runs} runs over {sessions} sessions")
        cpu_before = group_cpu_seconds(groups)
        # The enqueuing and the measuring happen in a child with the bench database's settings.
        code = _PLATFORM_DRIVER.format(
            runs=runs, sessions=sessions, delay=delay, clients=clients, rate=rate, slug=slug, agent=AGENT
        )
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE, text=True
        ).stdout
        main_cpu, pool_cpu = group_cpu_since(groups, cpu_before)
    seconds, client_cpu, *latencies = (float(x) for x in out.split())
    return Result("platform: echo run", runs, seconds, latencies, main_cpu, pool_cpu, client_cpu), pool


_PLATFORM_DRIVER = """
import sys, time
sys.path.append("bench")  # behind the stdlib: bench/queue.py is not the queue module
from _common import run_clients  # sets Django up
from django.db import connection
from agents_app.models import Run
from agents_app.services import agent_create
from agents_app.runs.submit import RunRequest, run_record
from sessions_app.services import tenant_create

tenant, _ = tenant_create(slug="{slug}")
agent_create(tenant=tenant, name="{agent}", framework="echo", config={{"delay_s": {delay}}})
warm_tenant, _ = tenant_create(slug="{slug}-warm")  # each client's first run, not counted
connection.close()  # each client process opens its own

def warm(n):
    run_record(RunRequest("echo", "warm", session_id=f"w{{n}}", mode="queued"), tenant=warm_tenant)

def client(first, started):
    for n in range(first, {runs}, {clients}):
        if {rate}:
            time.sleep(max(0.0, started + n / {rate} - time.time()))
        run_record(RunRequest("{agent}", f"m{{n}}", session_id=f"s{{n % {sessions}}}", mode="queued"), tenant=tenant)
    connection.close()

started, cpu = run_clients(client, {clients}, warm=warm)
deadline = time.time() + 600
# Unfinished runs through the (status, heartbeat_at) index: a scan of the finished ones at every
# poll would take the workers' CPU, as the baseline's HLEN does not.
while Run.objects.filter(status__in=[Run.Status.QUEUED, Run.Status.RUNNING]).exists():
    if time.time() > deadline:
        raise SystemExit("runs did not finish in 600 s")
    time.sleep(0.02)
rows = list(Run.objects.filter(tenant=tenant).values_list("status", "created_at", "finished_at"))
bad = [status for status, _, _ in rows if status != "succeeded"]
if bad:
    raise SystemExit(f"{{len(bad)}} runs did not succeed: {{set(bad)}}")
if len(rows) != {runs}:
    raise SystemExit(f"{{len(rows)}} runs recorded, not {runs}")
last = max(finished for _, _, finished in rows).timestamp()
print(last - started, cpu, *[(finished - created).total_seconds() for _, created, finished in rows])
"""


def bench_noop(
    tasks: int, delay: float, workers: int, clients: int, rate: float, redis_base: str, log: Log
) -> tuple[Result, Pool]:
    with tempfile.TemporaryDirectory(prefix="ak-bench-noop-") as tmp, ExitStack() as stack:
        key = f"akbench:noop:{uuid.uuid4().hex[:8]}"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "bench" / "baseline"),
            "NOOP_BROKER_URL": broker_url(redis_base),
            "NOOP_RESULTS_URL": redis_base,
            # The platform's pool and concurrency, as its settings give them to its workers.
            "NOOP_POOL": settings.CELERY_WORKER_POOL,
            "NOOP_CONCURRENCY": str(settings.CELERY_WORKER_CONCURRENCY),
            # One queue for every round: the app is imported (and bound to its queue) once.
            "NOOP_QUEUE": os.environ.get("NOOP_QUEUE") or f"noop-{uuid.uuid4().hex[:8]}",
        }
        stack.callback(delete_keys, broker_url(redis_base), *queue_keys(env["NOOP_QUEUE"]))
        groups, pool = start_workers(stack, "noop_app", env=env, workers=workers, log=Path(tmp) / "n")
        log(f"baseline: {workers} workers ({pool}) ready; sending {tasks} tasks that wait {delay:g} s")
        os.environ.update({k: env[k] for k in ("NOOP_BROKER_URL", "NOOP_RESULTS_URL", "NOOP_QUEUE")})
        sys.path.append(str(ROOT / "bench" / "baseline"))
        from noop_app import wait

        results = redis.Redis.from_url(redis_base)
        stack.callback(results.close)
        stack.callback(results.delete, key, f"{key}:warm")

        def client(first: int, started: float) -> None:
            for n in range(first, tasks, clients):
                if rate:
                    time.sleep(max(0.0, started + n / rate - time.time()))
                wait.delay(key, n, time.time(), delay)

        def warm(n: int) -> None:  # each client's first task, not counted
            wait.delay(f"{key}:warm", n, time.time(), 0)

        cpu_before = group_cpu_seconds(groups)
        started, client_cpu = run_clients(client, clients, warm=warm)
        deadline = time.time() + 600
        while results.hlen(key) < tasks:
            if time.time() > deadline:
                raise SystemExit("baseline tasks did not finish in 600 s")
            time.sleep(0.02)
        main_cpu, pool_cpu = group_cpu_since(groups, cpu_before)
        times = [tuple(map(float, v.split())) for v in results.hvals(key)]  # (sent, finished) per task
    seconds = max(finished for _, finished in times) - started
    latencies = [finished - sent for sent, finished in times]
    return Result("baseline: Celery task", tasks, seconds, latencies, main_cpu, pool_cpu, client_cpu), pool


def report(rounds: Sequence[tuple[Result, Result]], *, rate: float = 0) -> None:
    rows = [
        [
            f"{r.name}" + (f" (round {n})" if len(rounds) > 1 else ""),
            f"{r.count:,}",
            f"{r.per_second:,.1f}",
            f"{percentile(r.latencies, 0.5) * 1000:,.1f}",
            f"{percentile(r.latencies, 0.99) * 1000:,.1f}",
            r.ms_per_item(r.main_cpu),
            r.ms_per_item(r.pool_cpu),
            r.ms_per_item(r.client_cpu),
        ]
        for n, pair in enumerate(rounds, start=1)
        for r in pair
    ]
    headers = [
        "",
        "count",
        "per second",
        "latency p50 ms",
        "latency p99 ms",
        "CPU ms: worker main thread",
        "tasks' threads",
        "clients",
    ]
    print(table(headers, rows))
    print("")

    def each(values: Sequence[float], form: str) -> str:
        return f" (rounds: {', '.join(format(v, form) for v in values)})" if len(values) > 1 else ""

    cpu = [platform.cpu_ms / baseline.cpu_ms for platform, baseline in rounds]
    print(f"CPU per run / CPU per bare task (workers and clients): {median(cpu):.2f}{each(cpu, '.2f')}")
    if not rate:
        # Latencies here are mostly the wait behind each side's backlog: no comparison of them.
        ratios = [platform.per_second / baseline.per_second for platform, baseline in rounds]
        print(f"throughput ratio (platform / bare Celery): {median(ratios):.2f}{each(ratios, '.2f')}")
        return
    for fraction in (0.5, 0.99):
        extra = [
            (percentile(platform.latencies, fraction) - percentile(baseline.latencies, fraction)) * 1000
            for platform, baseline in rounds
        ]
        name = f"p{fraction * 100:g}"
        print(f"latency {name}, platform less bare Celery: {median(extra):+,.1f} ms{each(extra, '+,.1f')}")
    print(f"both sides offered {rate:g}/s: latency at that load; no throughput ratio (run without --rate)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument(
        "--delay", type=float, default=0.5, help="seconds each run awaits its model, and each bare task sleeps"
    )
    parser.add_argument(
        "--sessions", type=int, help="sessions the runs spread over (default: as many as runs, each run a new one)"
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes on each side (default 1)")
    parser.add_argument("--clients", type=int, default=4, help="processes enqueuing, as web processes do (default 4)")
    parser.add_argument(
        "--rate", type=float, default=0, help="runs/s to offer (default 0: as fast as they go); for latency"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="platform then baseline, this many times; the ratio is the median"
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.rounds < 1 or args.runs < 1:
        parser.error("--runs and --rounds: at least 1")
    if not 0 <= args.delay <= 60:
        parser.error("--delay: from 0 to 60 s (the echo framework's limit)")
    log = Log(args.quiet)
    rounds = []
    sessions = args.sessions or args.runs
    with redis_url(log) as url:
        shape = (args.delay, args.workers, args.clients, args.rate)
        for _ in range(args.rounds):
            platform, platform_pool = bench_platform(args.runs, sessions, *shape, url, log)
            baseline, baseline_pool = bench_noop(args.runs, *shape, url, log)
            rounds.append((platform, baseline))
    pools = f"{platform_pool}" if platform_pool == baseline_pool else f"{platform_pool} (baseline: {baseline_pool})"
    print(
        f"{args.runs} runs (delay {args.delay:g} s) over {sessions} sessions through a Redis broker,"
        f" {args.workers} worker process{'es' if args.workers > 1 else ''} ({pools} each),"
        f" {args.clients} clients enqueuing" + (f" at {args.rate:g} runs/s" if args.rate else "")
    )
    print("")
    report(rounds, rate=args.rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
