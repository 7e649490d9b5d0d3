"""Fair queues: how long tenant B's one queued run waits behind tenant A's backlog of N queued runs.

What it measures: tenant A queues N runs (``POST /run {"async": true}``, default 5,000) of an
``echo`` agent configured with ``{"delay_s": D}`` (a model that takes D s, default 1), then tenant
B queues one run of the same kind, once the worker has started on A's backlog (A's runs are queued
while no worker runs: a burst faster than the workers, or workers that were down). B's queue wait
is its run's ``started_at - created_at`` (from ``GET /runs/<id>``). It is measured twice, each
time on a fresh platform:

- ``fair``: a cap of runs in flight per tenant (``AK_LIMITS__RUNS_IN_FLIGHT``, ``--cap``, default
  500, the settings' default): A's runs past its cap wait in the database
  (``agents_app.runs.dispatch``), so B's run is in the broker behind at most A's runs in flight;
- ``fifo``: no cap (``AK_LIMITS__RUNS_IN_FLIGHT=0``), the baseline: B's run is behind all of A's
  queued runs in the broker, first in, first out.

It prints, per mode, B's wait, how many of A's runs had not started when B's was queued (A's
backlog) and how many of them started before B's did, A's time from its first run started to its
last run finished (fairness must not slow A down), and the ratio of B's waits (fifo / fair).

How: everything is started as ``bench/concurrency.py`` does (its helpers): a private
``redis-server`` (db 0 sessions, db 1 the broker), a fresh PostgreSQL database (SQLite when
PostgreSQL does not answer), ``manage.py migrate`` and ``create_tenant`` (A, B), ``gunicorn
akplatform.asgi:application -w 2`` with ``gunicorn.conf.py`` and one ``celery -A akplatform
worker`` as deployed (threads x 500), ``DJANGO_DEBUG=0``. A's runs are sent by ``--clients``
concurrent connections; each run is on a new session. A's figures are read from the database at
the end (``manage.py shell``), once its last run has finished.

    .venv/bin/python bench/fair_queue.py [--n 5000] [--delay 1] [--cap 500] [--clients 32]
        [--modes "fair fifo"] [--keep-logs DIR] [--json]

Exit code 1 when a run did not succeed, 2 when the set-up failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

# bench/ after the stdlib on sys.path: bench/queue.py must not hide the stdlib's queue.
sys.path.append(sys.path.pop(0))

import httpx
from concurrency import (
    ROOT,
    VENV_BIN,
    Platform,
    Processes,
    SetupError,
    create_database,
    deployed,
    platform_env,
    raise_fd_limit,
    run_checked,
    start_platform,
    start_redis,
    stop_group,
)

AGENT = "model"
MODES = ("fair", "fifo")
FINAL = ("succeeded", "failed", "cancelled")
RUN_TIMEOUT_S = 1800.0

#: A's runs, read from the database once they have all finished (``manage.py shell -c``).
A_FIGURES = """
import json
from agents_app.models import Run
from django.db.models import Max, Min
b = Run.objects.get(pk={b_run!r})
a = Run.objects.filter(tenant__slug="bench", agent__name="model")
span = a.aggregate(first=Min("started_at"), last=Max("finished_at"))
print(json.dumps({{
    "runs": a.count(),
    "succeeded": a.filter(status="succeeded").count(),
    "waiting_when_b_queued": a.filter(started_at__gt=b.created_at).count(),
    "started_before_b": a.filter(started_at__gt=b.created_at, started_at__lt=b.started_at).count(),
    "drain_s": (span["last"] - span["first"]).total_seconds(),
}}))
"""


def log(message: str) -> None:
    print(f"[fair_queue] {message}", file=sys.stderr, flush=True)


@dataclass
class Outcome:
    mode: str
    cap: int
    n: int
    b_wait_s: float
    b_status: str
    a_waiting_when_b_queued: int
    a_started_while_b_waited: int
    a_drain_s: float
    a_succeeded: int


def make_agent(url: str, key: str, delay: float) -> None:
    body = {"name": AGENT, "framework": "echo", "config": {"delay_s": delay}}
    r = httpx.post(f"{url}/agents", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    if r.status_code != 201:
        raise SetupError(f"POST /agents answered {r.status_code}: {r.text[:300]}")


async def queue_runs(url: str, key: str, n: int, clients: int, tag: str) -> list[str]:
    """``n`` queued runs on ``n`` new sessions, sent by ``clients`` connections at once; their ids."""
    headers = {"Authorization": f"Bearer {key}"}
    ids: list[str] = []
    numbers = iter(range(n))

    async def client(http: httpx.AsyncClient) -> None:
        for i in numbers:
            body = {"agent": AGENT, "message": f"{tag}{i}", "session_id": f"{tag}-{i}", "async": True}
            r = await http.post(f"{url}/run", json=body, headers=headers)
            if r.status_code != 202:
                raise SetupError(f"POST /run answered {r.status_code}: {r.text[:300]}")
            ids.append(r.json()["run_id"])

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=120) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return ids


def wait_finished(url: str, key: str, run_id: str, timeout: float = RUN_TIMEOUT_S) -> dict:
    headers = {"Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + timeout
    while True:
        run = httpx.get(f"{url}/runs/{run_id}", headers=headers, timeout=60).json()
        if run["status"] in FINAL:
            return run
        if time.monotonic() > deadline:
            raise SetupError(f"run {run_id} is still {run['status']} after {timeout:g} s")
        time.sleep(0.5)


def wait_started(url: str, key: str, run_id: str, timeout: float = 120) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + timeout
    while httpx.get(f"{url}/runs/{run_id}", headers=headers, timeout=60).json()["status"] == "queued":
        if time.monotonic() > deadline:
            raise SetupError(f"run {run_id} is still queued after {timeout:g} s: did the worker start?")
        time.sleep(0.2)


def measure(mode: str, args: argparse.Namespace, work: Path, procs: Processes, dropped: list[str]) -> Outcome:
    mode_work = work / mode
    mode_work.mkdir()
    procs.work = mode_work
    redis_port = start_redis(procs)
    database_url, db_name, database = create_database(mode_work)
    if db_name:
        dropped.append(db_name)
    log(f"{mode}: database {database}")
    cap = args.cap if mode == "fair" else 0
    env = {**platform_env(redis_port, database_url), "AK_LIMITS__RUNS_IN_FLIGHT": str(cap)}
    platform: Platform = start_platform(procs, env, args.web_workers, [])
    # No worker while A queues: its backlog builds up as a burst faster than the workers makes it.
    [worker] = [proc for proc in procs.started if proc.name == "worker"]
    stop_group(worker)
    procs.started.remove(worker)
    python = str(VENV_BIN / "python")
    out = run_checked([python, "manage.py", "create_tenant", "bench-b"], env, "create_tenant", mode_work / "setup.log")
    key_b = out.strip().splitlines()[-1].strip()
    make_agent(platform.url, platform.key, args.delay)
    make_agent(platform.url, key_b, args.delay)

    started = time.monotonic()
    ids_a = asyncio.run(queue_runs(platform.url, platform.key, args.n, args.clients, "a"))
    log(f"{mode}: A queued {len(ids_a)} runs in {time.monotonic() - started:.1f} s; the worker starts")
    procs.start("worker-again", worker.popen.args, env, ROOT)  # type: ignore[arg-type]
    wait_started(platform.url, platform.key, ids_a[0])
    [id_b] = asyncio.run(queue_runs(platform.url, key_b, 1, 1, "b"))
    run_b = wait_finished(platform.url, key_b, id_b)
    b_wait = (datetime.fromisoformat(run_b["started_at"]) - datetime.fromisoformat(run_b["created_at"])).total_seconds()
    log(f"{mode}: B's run {run_b['status']}, waited {b_wait:.2f} s; waiting for A's last runs")
    for run_id in ids_a[-20:]:
        wait_finished(platform.url, platform.key, run_id)
    code = A_FIGURES.format(b_run=id_b)
    figures = json.loads(
        run_checked([python, "manage.py", "shell", "-c", code], env, "A's figures", mode_work / "setup.log")
        .strip()
        .splitlines()[-1]
    )
    if figures["runs"] - figures["succeeded"]:  # the last 20 finished, not necessarily every one
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while figures["succeeded"] < figures["runs"] and time.monotonic() < deadline:
            time.sleep(5)
            out = run_checked([python, "manage.py", "shell", "-c", code], env, "A's figures", mode_work / "setup.log")
            figures = json.loads(out.strip().splitlines()[-1])
    procs.stop_all()
    return Outcome(
        mode=mode,
        cap=cap,
        n=args.n,
        b_wait_s=round(b_wait, 2),
        b_status=run_b["status"],
        a_waiting_when_b_queued=figures["waiting_when_b_queued"],
        a_started_while_b_waited=figures["started_before_b"],
        a_drain_s=round(figures["drain_s"], 1),
        a_succeeded=figures["succeeded"],
    )


def run(args: argparse.Namespace, work: Path, procs: Processes, dropped: list[str]) -> list[Outcome]:
    return [measure(mode, args, work, procs, dropped) for mode in args.modes]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=5000, help="tenant A's queued runs (default 5000)")
    p.add_argument("--delay", type=float, default=1.0, help="seconds the model takes (default 1)")
    p.add_argument(
        "--cap", type=int, default=500, help="AK_LIMITS__RUNS_IN_FLIGHT in fair mode (default 500, the default's)"
    )
    p.add_argument("--clients", type=int, default=32, help="connections sending A's runs (default 32)")
    p.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    p.add_argument("--modes", default=" ".join(MODES), help='default "fair fifo"')
    p.add_argument("--keep-logs", type=Path, metavar="DIR", help="copy every process's log to DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args(argv)
    args.modes = args.modes.split()
    if unknown := set(args.modes) - set(MODES):
        p.error(f"unknown modes: {sorted(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    outcome = deployed("ak-bench-fair-queue-", partial(run, args), args.keep_logs)
    if isinstance(outcome, int):
        return outcome
    by_mode = {o.mode: o for o in outcome}
    ratio = None
    if "fair" in by_mode and "fifo" in by_mode and by_mode["fair"].b_wait_s > 0:
        ratio = round(by_mode["fifo"].b_wait_s / by_mode["fair"].b_wait_s, 1)
    if args.json:
        print(json.dumps({"n": args.n, "delay_s": args.delay, "modes": [asdict(o) for o in outcome], "ratio": ratio}))
    else:
        print(f"A: {args.n} queued runs of a {args.delay:g} s model, then B: one")
        print(
            f"{'mode':6} {'cap':>5} {'B waited s':>11} {'A waiting':>10} {'A ahead':>8} {'A drain s':>10} {'A ok':>6}"
        )
        for o in outcome:
            print(
                f"{o.mode:6} {o.cap:>5} {o.b_wait_s:>11.2f} {o.a_waiting_when_b_queued:>10} "
                f"{o.a_started_while_b_waited:>8} {o.a_drain_s:>10.1f} {o.a_succeeded:>6}"
            )
        print("A waiting: A's runs not started when B's was queued; A ahead: those that started before B's")
        if ratio is not None:
            print(f"B's wait, fifo / fair: {ratio}x")
    ok = all(o.b_status == "succeeded" and o.a_succeeded == o.n for o in outcome)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
