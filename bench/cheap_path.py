"""Requests/s of the cheap path beside Agent Kernel's and beside an empty Django app's, in one run.

``../shared/bench/agentkernel/compare.sh`` gives the platform's requests/s as a ratio of Agent
Kernel's (echo, no model, 8 clients). This bench adds what that ratio is to be read against: the
requests/s of a Django app that does nothing (``bench/empty_django.py``), served exactly as the
platform is, with the same load generator on the same cores. No Django web tier answers faster
than that here, whatever it does per request.

How: it starts everything itself (as ``bench/concurrency.py`` does, whose helpers it uses): a
private ``redis-server``, a fresh PostgreSQL database (SQLite when PostgreSQL does not answer),
the platform as deployed (``gunicorn akplatform.asgi:application -w W`` with ``gunicorn.conf.py``,
a plain Celery worker), ``gunicorn empty_django:application -w W`` with the same configuration, and
Agent Kernel 0.9.5's echo (its REST API, Redis sessions). Then, for each of ``--rounds`` rounds, it
runs the shared harness's load generator (``bench_rest.py``: httpx, ``-c`` clients, ``-d`` seconds)
against each target in turn, so that a slower minute of the machine falls on all of them:

- ``agentkernel``: ``POST /api/v1/chat`` on Agent Kernel;
- ``django``: ``POST /django``, a plain async Django view, no middleware;
- ``drf``: ``POST /drf``, a DRF ``APIView`` without authentication, permissions or throttles;
- ``platform``: ``POST /run`` on the platform, echo agent, with its API key.

Sessions are ``fresh`` (a new one per request, the default) or ``per-client`` (one growing session
per client). It prints each target's requests/s and p50 per round, the median, and the ratio to
Agent Kernel's median (and the platform's to the empty apps'); ``--json`` prints one object. Exit
1 when any request failed, 2 when the set-up failed.

    .venv/bin/python bench/cheap_path.py [--rounds 3] [--duration 10] [--clients 8]
        [--sessions fresh|per-client] [--web-workers 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from concurrency import (
    AK_DIR,
    ROOT,
    VENV_BIN,
    Processes,
    SetupError,
    create_database,
    deployed,
    ensure_agentkernel_venv,
    free_port,
    log,
    platform_env,
    port_open,
    start_agentkernel,
    start_platform,
    start_redis,
    wait_until,
)


@dataclass
class Target:
    name: str
    url: str
    field: str  # the message's field in the body: Agent Kernel calls it "prompt"
    headers: list[str] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.rps) if self.rps else 0.0


def start_empty_django(procs: Processes, workers: int) -> str:
    """``bench/empty_django.py`` under gunicorn, configured as the platform is."""
    port = free_port()
    argv = [str(VENV_BIN / "gunicorn"), "bench.empty_django:application", "-b", f"127.0.0.1:{port}"]
    proc = procs.start("empty_django", [*argv, "-w", str(workers)], {"PATH": str(VENV_BIN)}, ROOT)
    wait_until(f"the empty Django app on port {port}", lambda: port_open(port), [proc], timeout=60)
    log(f"empty Django app on http://127.0.0.1:{port}")
    return f"http://127.0.0.1:{port}"


def load(python: Path, target: Target, args: argparse.Namespace) -> None:
    """One run of the shared load generator against ``target``; its figures appended to it."""
    argv = [str(python), str(AK_DIR / "bench_rest.py"), "--url", target.url, "--field", target.field]
    argv += ["--agent", "echo", "-c", str(args.clients), "-d", str(args.duration), "--sessions", args.sessions]
    argv += ["--json", *(arg for header in target.headers for arg in ("--header", header))]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=args.duration + 120)
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SetupError(f"the load generator failed on {target.name}:\n{done.stderr[-1500:]}") from None
    target.rps.append(float(result["rps"]))
    target.p50_ms.append(float(result["p50_ms"]))
    target.errors += int(result["errors"])


def run(args: argparse.Namespace, work: Path, procs: Processes, databases: list[str]) -> list[Target]:
    python = ensure_agentkernel_venv(work)  # bench_rest.py needs httpx, which that venv has
    redis_port = start_redis(procs)
    database_url, db_name, database = create_database(work)
    if db_name:
        databases.append(db_name)
    log(f"database: {database}")
    platform = start_platform(procs, platform_env(redis_port, database_url), args.web_workers, [])
    empty = start_empty_django(procs, args.web_workers)
    agentkernel = start_agentkernel(procs, redis_port, 0.0)
    targets = [
        Target("agentkernel", f"{agentkernel}/api/v1/chat", "prompt"),
        Target("django", f"{empty}/django", "message"),
        Target("drf", f"{empty}/drf", "message"),
        Target("platform", f"{platform.url}/run", "message", [f"Authorization: Bearer {platform.key}"]),
    ]
    for target in targets:  # warm-up, not counted: imports, connections, caches
        load(python, target, argparse.Namespace(**{**vars(args), "duration": 2}))
        target.rps, target.p50_ms, target.errors = [], [], 0
    for round_ in range(1, args.rounds + 1):
        for target in targets:
            load(python, target, args)
            log(f"round {round_}: {target.name} {target.rps[-1]:.1f} req/s, p50 {target.p50_ms[-1]:.1f} ms")
    return targets


def report(targets: list[Target], args: argparse.Namespace) -> dict[str, object]:
    by_name = {t.name: t for t in targets}
    ak, platform = by_name["agentkernel"].median, by_name["platform"].median
    return {
        "sessions": args.sessions,
        "clients": args.clients,
        "duration_s": args.duration,
        "web_workers": args.web_workers,
        "targets": {
            t.name: {"rps": t.rps, "p50_ms": t.p50_ms, "median_rps": t.median, "errors": t.errors} for t in targets
        },
        "vs_agentkernel": {t.name: round(t.median / ak, 2) if ak else None for t in targets},
        "platform_vs": {
            name: round(platform / by_name[name].median, 2) if by_name[name].median else None
            for name in ("django", "drf")
        },
    }


def _times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}"


def print_report(summary: dict) -> None:
    print(
        f"\ncheap path, echo without a model: {summary['clients']} clients, {summary['duration_s']:g} s a run,"
        f" {summary['sessions']} sessions, {summary['web_workers']} web processes"
    )
    print(f"{'target':<12} {'req/s per round':<28} {'median':>8} {'p50 ms':>7} {'errors':>6} {'x AK':>6}")
    for name, t in summary["targets"].items():
        rounds = " ".join(f"{r:.1f}" for r in t["rps"])
        p50 = statistics.median(t["p50_ms"]) if t["p50_ms"] else float("nan")
        ratio = _times(summary["vs_agentkernel"][name])
        print(f"{name:<12} {rounds:<28} {t['median_rps']:>8.1f} {p50:>7.1f} {t['errors']:>6} {ratio:>6}")
    vs = summary["platform_vs"]
    print(f"platform / empty Django view: {_times(vs['django'])}; platform / empty DRF view: {_times(vs['drf'])}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="runs per target, interleaved (default 3)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per run (default 10)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    p.add_argument("--sessions", choices=["fresh", "per-client"], default="fresh")
    p.add_argument("--web-workers", type=int, default=2, help="gunicorn processes per app (default 2)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.duration <= 0 or args.clients < 1 or args.web_workers < 1:
        p.error("--rounds, --duration, --clients and --web-workers must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    targets = deployed("ak-bench-cheap-path-", partial(run, args))
    if isinstance(targets, int):
        return targets
    summary = report(targets, args)
    if args.json:
        print(json.dumps(summary))
    else:
        print_report(summary)
    return 1 if any(t.errors for t in targets) else 0


if __name__ == "__main__":
    sys.exit(main())
