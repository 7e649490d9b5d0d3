"""Runs per second through the queue, and enqueue-to-finish latency, against bare Celery.

Both sides run on the same Redis broker with the same workers (2 worker processes, 2 pool
processes each, late acks, prefetch 1):

- **platform**: ``run_enqueue`` of the built-in ``echo`` agent, as ``POST /run {"async": true}``
  does it (Run row committed, then the task published); the workers claim the run, take the
  session's lock, load, run the adapter, commit to the Redis store and record the outcome.
  Latency is ``finished_at - created_at`` of each Run row. The runs go round ``--sessions``
  conversations (default: ten turns each, the shape of the 200-runs-over-20-sessions test);
  ``--sessions`` equal to ``--runs`` makes every run open a new session, the costliest case.
- **baseline**: a bare Celery no-op task (``bench/baseline/noop_app.py``) that only records when
  it ran.

On both sides ``--clients`` processes enqueue (forked, as web processes are; each sends one
uncounted message first, so that like a long-lived web process it has its imports and its
connections when the clock starts).

It prints runs/s and tasks/s, their ratio (goal: at least 0.5), and the p50 and p99 latency of
each, then stops everything it started. The two sides take turns ``--rounds`` times (default 5)
and the verdict is the median ratio: on a shared machine one round can be a third off. Beside
each side's rate it prints the CPU spent per run, read from ``/proc``, by the workers' main
processes (the broker's consumers, which hand tasks to the pool and ack them), by their pools
(where the tasks run) and by the enqueuing clients: on a machine that the bench saturates, that
ratio is the one throughput follows, and it says which process the cost is in.

    .venv/bin/python bench/queue.py [--runs 500] [--sessions 50] [--workers 2] [--concurrency 2]
                                    [--clients 4] [--rate R] [--rounds 5]

Without ``--rate`` the clients enqueue as fast as they can: the throughput figure, with latencies
that are mostly the wait behind the backlog. With ``--rate`` below both sides' capacity, the
latencies are those of an unsaturated queue (the throughput ratio then says nothing).

Django runs with ``DEBUG`` off, as in production. The database is a fresh SQLite file (or, with
``DATABASE_URL=postgres://...``, a fresh PostgreSQL database); Redis is the one on 127.0.0.1:6379,
else a redis-server of our own.
"""

from __future__ import annotations

import sys

# bench/ holds queue.py, named like the stdlib's queue: put this folder behind the stdlib.
sys.path.append(sys.path.pop(0))

import argparse
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import redis
from _common import ROOT, Log, group_cpu_seconds, group_cpu_since, median, percentile, redis_url, run_clients, table

from tests import services

GOAL = 0.5


@dataclass
class Result:
    name: str
    count: int
    seconds: float
    latencies: list[float]
    #: CPU seconds the workers' main processes (the broker's consumers), their pools (where the
    #: tasks run) and the enqueuing clients used.
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
        "CELERY_BROKER_URL": redis.rsplit("/", 1)[0] + "/2",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "DJANGO_SETTINGS_MODULE": "akplatform.settings",
        # As in production: no debug cursor recording every statement.
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": f"bench-{uuid.uuid4().hex}",
    }


def start_workers(
    stack: ExitStack, app: str, concurrency: int, *, env: dict[str, str], workers: int, log: Path
) -> list[int]:
    """Start the workers (logging warnings only, as in production) and wait until all answer a
    ping. Returns their process groups (each worker and its pool)."""
    groups = []
    for i in range(workers):
        process = services.Process(
            args=[*worker_args(app, concurrency), f"--hostname=bench{i}-{uuid.uuid4().hex[:4]}@%h"],
            log=log.with_suffix(f".{i}.log"),
            cwd=ROOT,
            env=env,
        ).start()
        stack.callback(process.stop)
        groups.append(process.proc.pid)  # started in a session of its own: its pid is its group
    deadline = time.monotonic() + 90
    while True:
        ping = [sys.executable, "-m", "celery", "-A", app, "inspect", "ping", "--timeout=1", "--json"]
        out = subprocess.run(ping, cwd=ROOT, env=env, capture_output=True, text=True).stdout
        if out.count('"ok"') >= workers:
            return groups
        if time.monotonic() > deadline:
            raise SystemExit(f"{app}: {workers} workers did not answer in 90 s; logs in {log.parent}")
        time.sleep(0.5)


def worker_args(app: str, concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        f"--concurrency={concurrency}",
        "--pool=prefork",
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


def bench_platform(
    runs: int, sessions: int, workers: int, concurrency: int, clients: int, rate: float, redis: str, log: Log
) -> Result:
    with tempfile.TemporaryDirectory(prefix="ak-bench-queue-") as tmp, ExitStack() as stack:
        directory = Path(tmp)
        env = platform_env(directory, redis, f"bench-{uuid.uuid4().hex[:8]}")
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        groups = start_workers(stack, "akplatform", concurrency, env=env, workers=workers, log=directory / "w")
        log(f"platform: {workers} workers x {concurrency} ready; enqueueing {runs} runs over {sessions} sessions")
        cpu_before = group_cpu_seconds(groups)
        # The enqueuing and the measuring happen in a child with the bench database's settings.
        code = _PLATFORM_DRIVER.format(runs=runs, sessions=sessions, clients=clients, rate=rate)
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE, text=True
        ).stdout
        main_cpu, pool_cpu = group_cpu_since(groups, cpu_before)
    seconds, client_cpu, *latencies = (float(x) for x in out.split())
    return Result("platform: echo run", runs, seconds, latencies, main_cpu, pool_cpu, client_cpu)


_PLATFORM_DRIVER = """
import sys, time
sys.path.append("bench")  # behind the stdlib: bench/queue.py is not the queue module
from _common import run_clients  # sets Django up
from django.db import connection
from agents_app.models import Run
from agents_app.services import agent_ensure_builtins, run_enqueue
from sessions_app.services import tenant_create

tenant, _ = tenant_create(slug="bench")
agent_ensure_builtins(tenant=tenant)
warm_tenant, _ = tenant_create(slug="bench-warm")  # each client's first run, not counted
connection.close()  # each client process opens its own

def warm(n):
    run_enqueue(tenant=warm_tenant, agent_name="echo", message="warm", session_id=f"w{{n}}")

def client(first, started):
    for n in range(first, {runs}, {clients}):
        if {rate}:
            time.sleep(max(0.0, started + n / {rate} - time.time()))
        run_enqueue(tenant=tenant, agent_name="echo", message=f"m{{n}}", session_id=f"s{{n % {sessions}}}")
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
last = max(finished for _, _, finished in rows).timestamp()
print(last - started, cpu, *[(finished - created).total_seconds() for _, created, finished in rows])
"""


def bench_noop(
    tasks: int, workers: int, concurrency: int, clients: int, rate: float, redis_base: str, log: Log
) -> Result:
    with tempfile.TemporaryDirectory(prefix="ak-bench-noop-") as tmp, ExitStack() as stack:
        key = f"akbench:noop:{uuid.uuid4().hex[:8]}"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "bench" / "baseline"),
            "NOOP_BROKER_URL": redis_base.rsplit("/", 1)[0] + "/2",
            "NOOP_RESULTS_URL": redis_base,
            # One queue for every round: the no-op app is imported (and bound to its queue) once.
            "NOOP_QUEUE": os.environ.get("NOOP_QUEUE") or f"noop-{uuid.uuid4().hex[:8]}",
        }
        groups = start_workers(stack, "noop_app", concurrency, env=env, workers=workers, log=Path(tmp) / "n")
        log(f"baseline: {workers} workers x {concurrency} ready; sending {tasks} no-op tasks")
        os.environ.update({k: env[k] for k in ("NOOP_BROKER_URL", "NOOP_RESULTS_URL", "NOOP_QUEUE")})
        sys.path.append(str(ROOT / "bench" / "baseline"))
        from noop_app import noop

        results = redis.Redis.from_url(redis_base)

        def client(first: int, started: float) -> None:
            for n in range(first, tasks, clients):
                if rate:
                    time.sleep(max(0.0, started + n / rate - time.time()))
                noop.delay(key, n, time.time())

        def warm(n: int) -> None:  # each client's first task, not counted
            noop.delay(f"{key}:warm", n, time.time())

        cpu_before = group_cpu_seconds(groups)
        started, client_cpu = run_clients(client, clients, warm=warm)
        deadline = time.time() + 600
        while results.hlen(key) < tasks:
            if time.time() > deadline:
                raise SystemExit("no-op tasks did not finish in 600 s")
            time.sleep(0.02)
        main_cpu, pool_cpu = group_cpu_since(groups, cpu_before)
        times = [tuple(map(float, v.split())) for v in results.hvals(key)]  # (sent, finished) per task
        results.delete(key, f"{key}:warm")
    seconds = max(finished for _, finished in times) - started
    latencies = [finished - sent for sent, finished in times]
    return Result("baseline: Celery no-op", tasks, seconds, latencies, main_cpu, pool_cpu, client_cpu)


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
    headers = ["", "count", "per second", "latency p50 ms", "latency p99 ms", "CPU ms: worker main", "pool", "clients"]
    print(table(headers, rows))
    print("")
    if rate:
        print(f"both sides offered {rate:g}/s: latency at that load; no throughput verdict (run without --rate)")
        return
    ratios = [platform.per_second / baseline.per_second for platform, baseline in rounds]
    ratio = median(ratios)
    verdict = "ok" if ratio >= GOAL else "BELOW GOAL"
    each = f" (rounds: {', '.join(f'{r:.2f}' for r in ratios)})" if len(ratios) > 1 else ""
    print(f"throughput ratio (platform / bare Celery): {ratio:.2f}{each} ({verdict}: goal >= {GOAL})")
    cpu = median([baseline.cpu_ms / platform.cpu_ms for platform, baseline in rounds])
    print(f"CPU per bare task / CPU per run (workers and clients): {cpu:.2f}, what a CPU-bound machine allows")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument(
        "--sessions", type=int, help="sessions the runs spread over (default: runs / 10, ten turns each)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4, help="processes enqueuing, as web processes do (default 4)")
    parser.add_argument(
        "--rate", type=float, default=0, help="runs/s to offer (default 0: as fast as they go); for latency"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="platform then baseline, this many times; the verdict is the median"
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    log = Log(args.quiet)
    rounds = []
    with redis_url(log) as url:
        sessions = args.sessions or max(1, args.runs // 10)
        shape = (args.workers, args.concurrency, args.clients, args.rate)
        for _ in range(args.rounds):
            platform = bench_platform(args.runs, sessions, *shape, url, log)
            baseline = bench_noop(args.runs, *shape, url, log)
            rounds.append((platform, baseline))
    print(
        f"{args.runs} runs through a Redis broker, {args.workers} workers x {args.concurrency} processes,"
        f" {args.clients} clients enqueuing" + (f" at {args.rate:g} runs/s" if args.rate else "")
    )
    print("")
    report(rounds, rate=args.rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
