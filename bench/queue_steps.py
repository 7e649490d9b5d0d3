"""Where a queued run's time goes: each step of its life, timed in one process.

The steps are the services a request and a worker call, in order: ``run_enqueue`` (the Run row
and the session's index rows, then the publish), ``run_read`` (a first attempt is read, not
claimed: see ``agents_app.lifecycle``), the runner (lock, load and the run's replay lookup,
adapter, commit and unlock, on the store) and ``run_finish`` (which claims it too). No Celery
worker is involved: the broker is kombu's in-memory transport, so what is left is the platform's
own cost per run.

    .venv/bin/python bench/queue_steps.py [--runs 300]

The database is a fresh SQLite file, or a fresh PostgreSQL database with
``DATABASE_URL=postgres://...``; the store is the Redis on 127.0.0.1:6379 (else one of our own).
"""

from __future__ import annotations

import sys

# bench/ holds queue.py, named like the stdlib's queue: put this folder behind the stdlib.
sys.path.append(sys.path.pop(0))

import argparse
import os
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from _common import ROOT, Log, redis_url, table

_DRIVER = """
import time, django
django.setup()
from django.utils import timezone
from agents_app.lifecycle import _execute, _on_loop, run_finish, run_read
from agents_app.services import agent_ensure_builtins, run_enqueue
from sessions_app.selectors import session_key
from sessions_app.services import tenant_create

tenant, _ = tenant_create(slug="steps")
agent_ensure_builtins(tenant=tenant)
steps = dict.fromkeys(["enqueue", "read", "run", "finish"], 0.0)
for n in range({runs}):
    t0 = time.perf_counter()
    queued, _ = run_enqueue(tenant=tenant, agent_name="echo", message=f"m{{n}}", session_id=f"s{{n}}")
    t1 = time.perf_counter()
    run = run_read(run_id=str(queued.pk))
    run.started_at = timezone.now()
    t2 = time.perf_counter()
    outcome, _ = _on_loop(_execute(run, session_key(run.session), "steps@bench", 0))
    t3 = time.perf_counter()
    run_finish(run, worker="steps@bench", status="succeeded", result=outcome.reply, total=outcome.commit.total)
    t4 = time.perf_counter()
    for name, seconds in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
        steps[name] += seconds
print(*(steps[name] / {runs} * 1000 for name in steps))
"""

STEPS = {
    "enqueue": "run_enqueue: agent and session rows (thread + session if new), Run INSERT, publish",
    "read": "run_read: SELECT the queued run with its agent, session, tenant (what executing uses)",
    "run": "the runner: lock+load+replay lookup (1 Redis round trip), adapter, commit+unlock (1 round trip)",
    "finish": "run_finish: the session's index row, then UPDATE queued -> succeeded, each its own commit",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    log = Log(args.quiet)
    with redis_url(log) as redis, tempfile.TemporaryDirectory(prefix="ak-bench-steps-") as tmp:
        database = os.environ.get("DATABASE_URL", "")
        if database.startswith(("postgres://", "postgresql://")):
            import psycopg

            name = f"akp_steps_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(database.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            database = database.rsplit("/", 1)[0] + f"/{name}"
        else:
            database = f"sqlite:///{Path(tmp) / 'steps.sqlite3'}"
        env = {
            **os.environ,
            "DATABASE_URL": database,
            "AK_VAR_DIR": str(Path(tmp) / "var"),
            "AK_SESSION__TYPE": "redis",
            "AK_SESSION__REDIS__URL": redis,
            "CELERY_BROKER_URL": "memory://localhost/",
            "DJANGO_SETTINGS_MODULE": "akplatform.settings",
            # As in production: no debug cursor recording every statement.
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": f"bench-{uuid.uuid4().hex}",
        }
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        out = subprocess.run(
            [sys.executable, "-c", _DRIVER.format(runs=args.runs)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    timings = dict(zip(STEPS, (float(x) for x in out.split()), strict=True))
    kind = "PostgreSQL" if database.startswith("postgres") else "SQLite"
    print(f"one queued run, step by step ({args.runs} runs, {kind}, Redis store)")
    print("")
    rows = [[STEPS[name], f"{ms:.2f}"] for name, ms in timings.items()]
    rows.append(["total", f"{sum(timings.values()):.2f}"])
    print(table(["step", "ms per run"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
