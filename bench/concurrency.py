"""N runs at once of a slow model, through the real deployment, side by side with Agent Kernel.

What it measures: the wall time from firing N runs at once (each on a new session) of an ``echo``
agent configured with ``{"delay_s": D}`` (it awaits D seconds where a model call would be) until
all N are answered, divided by D. 1.0 is the ideal: every run waits on its model at the same time.

How: it starts everything itself, on 127.0.0.1 on free ports, and stops it all at exit (also on
Ctrl-C or error), each process in its own process group:

- a private ``redis-server`` (no persistence): db 0 the platform's session store, db 1 its Celery
  broker, db 2 Agent Kernel's session store;
- a fresh PostgreSQL database ``bench_<random>`` on ``postgres://postgres@127.0.0.1:5432`` (dropped
  at the end), or a SQLite file in a temporary folder when PostgreSQL does not answer (it says so);
- the platform as deployed: ``manage.py migrate``, ``manage.py create_tenant bench``, then
  ``gunicorn akplatform.asgi:application -w WEB_WORKERS`` when ``gunicorn.conf.py`` is at the
  project root (the conf file chooses the worker class), else ``gunicorn akplatform.wsgi:application
  -k gthread --threads 8``; and one plain ``celery -A akplatform worker`` (``--worker-args`` adds
  flags); ``DJANGO_DEBUG=0``, Redis sessions and broker, throttling out of the way;
- Agent Kernel 0.9.5 serving ``../shared/bench/agentkernel/echo_agent.py`` (its REST API, direct
  mode, Redis sessions, ``ECHO_DELAY_S=D``) from its own Python 3.12 venv
  ``~/.cache/ak-venv-0.9.5`` (made on first use, as ``lib.sh`` does).

Then it creates the agent ``slow`` (``POST /agents``) and, after a warm-up of 4 uncounted runs per
mode, for each mode fires N runs at once, each on a connection of its own opened beforehand
(``Client``, a lean HTTP/1.1 client: httpx would cost more CPU than the servers it measures):

- ``agentkernel``: ``POST /api/v1/chat`` on Agent Kernel;
- ``sync``: ``POST /run`` on the platform, answered 200 when the run is done;
- ``async``: ``POST /run {"async": true}`` (202), then ``GET /runs/<id>`` every 0.25 s until the
  run succeeded, failed or was cancelled; the enqueueing of all N is inside the measured time.

It prints, per mode, N, the wall time, wall/D, the outcomes (status codes, final statuses) and the
errors (exceptions by type), then each platform mode's wall/D beside Agent Kernel's. ``--json``
prints one JSON object instead. The exit code is 1 when any measured run did not succeed, 2 when
the set-up failed.

Goal, on this 2-core machine with N=500 and D=2: sync wall/D <= 1.5, async wall/D <= 2.0, and no
run failing. (Agent Kernel: about 1.2 with N=100, 4 with N=500; the platform with N=100 before
this goal: sync 7 to 12.5, async about 50.)

    .venv/bin/python bench/concurrency.py [--n 500] [--delay 2] [--web-workers 2]
        [--modes "agentkernel sync async"] [--no-agentkernel] [--worker-args "--concurrency 8"]
        [--keep-logs DIR] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import glob
import json
import os
import resource
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import httpx

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
AK_DIR = ROOT.parent / "shared" / "bench" / "agentkernel"
AK_VENV = Path(os.environ.get("AKV", str(Path.home() / ".cache" / "ak-venv-0.9.5")))
AK_REQUIREMENT = "agentkernel[api,redis,openai]==0.9.5"
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
AGENT = "slow"
MODES = ("agentkernel", "sync", "async")
FINAL = ("succeeded", "failed", "cancelled")
SUCCESS = {"agentkernel": "200", "sync": "200", "async": "succeeded"}
GOALS = {"sync": 1.5, "async": 2.0}
WARMUP_RUNS = 4
POLL_S = 0.25
RUN_TIMEOUT_S = 600.0
STOP_GRACE_S = 15.0

T = TypeVar("T")


def log(message: str) -> None:
    """Progress goes to stderr, so that ``--json`` leaves stdout to the result."""
    print(f"[concurrency] {message}", file=sys.stderr, flush=True)


class SetupError(Exception):
    """Something the benchmark needs did not start; the message says what."""


# --- processes ----------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when this script dies, even by SIGKILL (Linux only)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Proc:
    """A started process, leader of its own process group, its output in ``log_path``."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return "(no log)"
        return "\n".join(f"    {line}" for line in text)


class Processes:
    """Starts processes in their own groups and stops every group, newest first."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.started: list[Proc] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> Proc:
        log_path = self.work / f"{name}.log"
        with log_path.open("ab") as out:
            popen = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # safe: no threads exist while processes start
            )
        proc = Proc(name, popen, log_path)
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            stop_group(proc)
        self.started.clear()


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(proc: Proc) -> None:
    """SIGTERM to the whole group, SIGKILL to what is left after ``STOP_GRACE_S``; reap the leader."""
    pgid = proc.popen.pid  # start_new_session: the leader's pid is the group's id
    for sig, grace in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.popen.poll()  # reap the leader, else its zombie keeps the group alive
            if not _group_exists(pgid):
                return
            time.sleep(0.1)
    if _group_exists(pgid):
        log(f"warning: process group {pgid} ({proc.name}) survived SIGKILL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_until(what: str, ready: Callable[[], bool], procs: list[Proc], timeout: float = 90.0) -> None:
    """Poll ``ready`` until it holds; fail early, with the log's tail, when one of ``procs`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        for proc in procs:
            if not proc.alive():
                raise SetupError(f"{proc.name} exited ({proc.popen.returncode}) before {what}:\n{proc.tail()}")
        time.sleep(0.2)
    tails = "\n".join(f"  {p.name}:\n{p.tail()}" for p in procs)
    raise SetupError(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")


def run_checked(argv: list[str], env: dict[str, str], what: str, log_path: Path) -> str:
    """Run a command to completion; its stdout, or SetupError with the tail of its output."""
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    with log_path.open("a") as out:
        out.write(f"$ {shlex.join(argv)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise SetupError(f"{what} failed ({result.returncode}):\n{tail}")
    return result.stdout


# --- services -----------------------------------------------------------------------------------


def start_redis(procs: Processes) -> int:
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(procs.work)]
    if shutil.which("redis-server") is None:
        raise SetupError("redis-server is not installed (apt-get install redis-server)")
    proc = procs.start("redis", argv, dict(os.environ), procs.work)
    wait_until(f"redis-server on port {port}", lambda: port_open(port), [proc], timeout=30)
    log(f"redis-server on 127.0.0.1:{port}")
    return port


def _psql(sql: str) -> subprocess.CompletedProcess[str]:
    argv = ["psql", "-h", PG_ADMIN["host"], "-p", str(PG_ADMIN["port"]), "-U", PG_ADMIN["user"]]
    argv += ["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql]
    env = {**os.environ, "PGCONNECT_TIMEOUT": "5"}
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=60)


def create_database(work: Path) -> tuple[str, str | None, str]:
    """``(DATABASE_URL, the PostgreSQL database to drop or None, a description)``."""
    sqlite = f"sqlite:///{work / 'db.sqlite3'}"
    if not port_open(int(PG_ADMIN["port"])):
        return sqlite, None, "SQLite (PostgreSQL does not answer on 127.0.0.1:5432)"
    if shutil.which("psql") is None:
        return sqlite, None, "SQLite (PostgreSQL answers but psql is not installed)"
    name = f"bench_{secrets.token_hex(6)}"
    result = _psql(f'CREATE DATABASE "{name}"')
    if result.returncode != 0:
        return sqlite, None, f"SQLite (CREATE DATABASE on PostgreSQL failed: {result.stderr.strip()})"
    url = f"postgres://{PG_ADMIN['user']}@{PG_ADMIN['host']}:{PG_ADMIN['port']}/{name}"
    return url, name, f"PostgreSQL, database {name} (dropped at the end)"


def drop_database(name: str) -> None:
    result = _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if result.returncode != 0:  # before PostgreSQL 13: no FORCE
        result = _psql(f'DROP DATABASE IF EXISTS "{name}"')
    if result.returncode != 0:
        log(f"warning: could not drop database {name}: {result.stderr.strip()}")
    else:
        log(f"dropped database {name}")


@dataclass
class Platform:
    url: str
    key: str
    web: str


def platform_env(redis_port: int, database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SECRET_KEY": secrets.token_hex(32),
        "AK_SECRETS_KEY": secrets.token_hex(32),
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "AK_SESSION__TYPE": "redis",
        "AK_SESSION__REDIS__URL": f"redis://127.0.0.1:{redis_port}/0",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/1",
        "AK_API__THROTTLE_RATE": "1000000/min",
        "DATABASE_URL": database_url,
    }


def web_command(port: int, workers: int) -> tuple[list[str], str]:
    """The web tier as deployed: the project's ``gunicorn.conf.py`` decides when it is there."""
    bind = ["-b", f"127.0.0.1:{port}", "-w", str(workers)]
    if (ROOT / "gunicorn.conf.py").is_file():
        return [str(VENV_BIN / "gunicorn"), "akplatform.asgi:application", *bind], "asgi, gunicorn.conf.py"
    gthread = ["-k", "gthread", "--threads", "8", "--timeout", "600"]
    return [str(VENV_BIN / "gunicorn"), "akplatform.wsgi:application", *bind, *gthread], "wsgi, gthread x8"


def health_ok(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def start_platform(procs: Processes, env: dict[str, str], web_workers: int, worker_args: list[str]) -> Platform:
    python = str(VENV_BIN / "python")
    setup_log = procs.work / "setup.log"
    run_checked([python, "manage.py", "migrate", "--noinput"], env, "manage.py migrate", setup_log)
    out = run_checked([python, "manage.py", "create_tenant", "bench"], env, "manage.py create_tenant", setup_log)
    lines = out.strip().splitlines()
    if not lines:
        raise SetupError("manage.py create_tenant printed no API key")
    port = free_port()
    argv, web = web_command(port, web_workers)
    web_proc = procs.start("web", argv, env, ROOT)
    worker_argv = [str(VENV_BIN / "celery"), "-A", "akplatform", "worker", "--loglevel", "WARNING", *worker_args]
    worker_proc = procs.start("worker", worker_argv, env, ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_until(f"GET {url}/health to answer 200", lambda: health_ok(url), [web_proc, worker_proc])
    log(f"platform on {url} ({web}, {web_workers} web workers) and a celery worker")
    return Platform(url=url, key=lines[-1].strip(), web=web)


def find_python_312() -> str:
    home = Path.home()
    candidates = ["python3.12", "python3.13"]
    for minor in ("3.12", "3.13"):
        candidates += sorted(glob.glob(str(home / ".pyenv" / "versions" / f"{minor}*" / "bin" / "python3")))
    check = "import sys; assert sys.version_info[:2] in ((3, 12), (3, 13))"
    for candidate in candidates:
        with contextlib.suppress(OSError):
            if subprocess.run([candidate, "-c", check], capture_output=True, check=False).returncode == 0:
                return candidate
    raise SetupError("no Python 3.12/3.13 found for Agent Kernel (it refuses 3.11)")


def ensure_agentkernel_venv(work: Path) -> Path:
    """Agent Kernel's venv, made as ``lib.sh`` does when it is missing."""
    python = AK_VENV / "bin" / "python"
    if python.exists():
        return python
    base = find_python_312()
    log(f"making Agent Kernel's venv {AK_VENV} with {base} (once; takes a minute)")
    pip_log = work / "akpip.log"
    env = dict(os.environ)
    run_checked([base, "-m", "venv", str(AK_VENV)], env, "python -m venv", pip_log)
    pip = [str(AK_VENV / "bin" / "pip"), "install", "-q", AK_REQUIREMENT, "httpx"]
    try:
        run_checked(pip, env, "installing agentkernel", pip_log)
    except SetupError:
        shutil.rmtree(AK_VENV, ignore_errors=True)  # a half-made venv would be taken as ready next time
        raise
    return python


def start_agentkernel(procs: Processes, redis_port: int, delay: float) -> str:
    python = ensure_agentkernel_venv(procs.work)
    port = free_port()
    ours = ("AK_", "DJANGO_", "CELERY_", "DATABASE_")  # the platform's settings are not Agent Kernel's
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env |= {
        "ECHO_DELAY_S": str(delay),
        "AK_API__HOST": "127.0.0.1",
        "AK_API__PORT": str(port),
        "AK_SESSION__TYPE": "redis",
        "AK_SESSION__REDIS__URL": f"redis://127.0.0.1:{redis_port}/2",
        "AK_LOGGING__AK__LEVEL": "WARNING",
    }
    proc = procs.start("agentkernel", [str(python), "echo_agent.py"], env, AK_DIR)
    wait_until(f"Agent Kernel on port {port}", lambda: port_open(port), [proc], timeout=60)
    log(f"Agent Kernel on http://127.0.0.1:{port}")
    return f"http://127.0.0.1:{port}"


def create_agent(platform: Platform, delay: float) -> None:
    body = {"name": AGENT, "framework": "echo", "config": {"delay_s": delay}}
    headers = {"Authorization": f"Bearer {platform.key}"}
    r = httpx.post(f"{platform.url}/agents", json=body, headers=headers, timeout=30)
    if r.status_code not in (200, 201):
        raise SetupError(f"POST /agents answered {r.status_code}: {r.text[:300]}")


# --- the load -----------------------------------------------------------------------------------


@dataclass
class Result:
    mode: str
    n: int
    wall_s: float
    wall_per_delay: float
    ok: int
    outcome: dict[str, int]
    errors: dict[str, int]
    samples: dict[str, str] = field(default_factory=dict)  # the first body or message per failure
    # Where the time went, in seconds after the first request: when the last async run was enqueued
    # (its 202 answered), claimed by the worker, finished (the last two from the database).
    timeline: dict[str, float] = field(default_factory=dict)
    started_epoch: float = 0.0
    requests: int = 0  # HTTP requests made: N, and an async mode's polls


@dataclass
class Target:
    mode: str
    url: str
    headers: dict[str, str]


class Client:
    """A lean HTTP/1.1 client for the load: one keep-alive connection per concurrent caller.

    httpx spends milliseconds of CPU per request with hundreds of connections open (11 s of CPU
    for 500 requests here, more than the servers it measured), so the load generator, on the same
    two cores as the servers, would be what the bench measured. This one writes a request and reads
    a ``Content-Length`` response on a plain asyncio stream: a few tens of microseconds each.
    """

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = url.removeprefix("http://").split(":")
        self.host, self.port = parts[0], int(parts[1])
        self.headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    async def connect(self) -> Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return Connection(self, reader, writer)


@dataclass
class Connection:
    client: Client
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    posted_at: float | None = None  # an async run's: when its 202 came
    requests: int = 0

    async def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        self.requests += 1
        data = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.client.host}:{self.client.port}\r\n{self.client.headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        self.writer.write(head.encode() + data)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        length, chunked = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
        if not chunked:
            return int(status_line.split()[1]), await self.reader.readexactly(length)
        body = b""
        while size := int((await self.reader.readline()).split(b";")[0], 16):
            body += (await self.reader.readexactly(size + 2))[:-2]
        await self.reader.readline()  # the blank line after the last chunk
        return int(status_line.split()[1]), body

    def close(self) -> None:
        self.writer.close()


async def _one_agentkernel(c: Connection, i: int) -> tuple[str, str]:
    body = {"agent": "echo", "prompt": f"m{i}", "session_id": f"bench-{uuid.uuid4().hex}"}
    status, text = await c.request("POST", "/api/v1/chat", body)
    return str(status), "" if status == 200 else text.decode(errors="replace")


async def _one_sync(c: Connection, i: int) -> tuple[str, str]:
    body = {"agent": AGENT, "message": f"m{i}", "session_id": f"bench-{uuid.uuid4().hex}"}
    status, text = await c.request("POST", "/run", body)
    return str(status), "" if status == 200 else text.decode(errors="replace")


async def _poll(c: Connection, run_id: str, deadline: float) -> tuple[str, str]:
    while time.perf_counter() < deadline:
        status, text = await c.request("GET", f"/runs/{run_id}")
        run = json.loads(text) if status == 200 else {}
        if run.get("status") in FINAL:
            return run["status"], "" if run["status"] == "succeeded" else f"run {run_id}: {run.get('error')}"
        await asyncio.sleep(POLL_S)
    return "timeout", f"run {run_id} not finished after {RUN_TIMEOUT_S:.0f}s"


async def _one_async(c: Connection, i: int) -> tuple[str, str]:
    deadline = time.perf_counter() + RUN_TIMEOUT_S
    body = {"agent": AGENT, "message": f"m{i}", "session_id": f"bench-{uuid.uuid4().hex}", "async": True}
    status, text = await c.request("POST", "/run", body)
    c.posted_at = time.perf_counter()
    if status != 202:
        return f"post {status}", text.decode(errors="replace")
    return await _poll(c, json.loads(text)["run_id"], deadline)


ONE = {"agentkernel": _one_agentkernel, "sync": _one_sync, "async": _one_async}


async def fire(target: Target, n: int, delay: float) -> Result:
    """N runs at once, each on a new session and its own connection; the wall time from the first
    request sent until the last is answered (connections are opened before the clock starts, as a
    client's keep-alive connections would be)."""
    client = Client(target.url, target.headers)
    connections = await asyncio.gather(*(client.connect() for _ in range(n)))
    one = ONE[target.mode]

    async def timed(c: Connection, i: int) -> tuple[str, str]:
        return await asyncio.wait_for(one(c, i), RUN_TIMEOUT_S)

    started_epoch, t0 = time.time(), time.perf_counter()
    answers = await asyncio.gather(*(timed(c, i) for i, c in enumerate(connections)), return_exceptions=True)
    wall = time.perf_counter() - t0
    posted = [c.posted_at - t0 for c in connections if c.posted_at is not None]
    for c in connections:
        c.close()
    outcome: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    samples: dict[str, str] = {}
    for answer in answers:
        if isinstance(answer, BaseException):
            key = type(answer).__name__
            errors[key] += 1
            samples.setdefault(key, (str(answer) or repr(answer))[:300])
            continue
        key, detail = answer
        outcome[key] += 1
        if detail:
            samples.setdefault(key, detail[:300])
    return Result(
        mode=target.mode,
        n=n,
        wall_s=round(wall, 2),
        wall_per_delay=round(wall / delay, 2),
        ok=outcome.get(SUCCESS[target.mode], 0),
        outcome=dict(outcome),
        errors=dict(errors),
        samples=samples,
        timeline={"enqueued": round(max(posted), 2)} if posted else {},
        started_epoch=started_epoch,
        requests=sum(c.requests for c in connections),
    )


def runs_timeline(db_name: str | None, since_epoch: float) -> dict[str, float]:
    """When the runs made since ``since_epoch`` were last claimed and last finished, in seconds
    after it (PostgreSQL only: the SQLite fallback's file belongs to the platform)."""
    if db_name is None:
        return {}
    sql = (
        "SELECT round((extract(epoch from max(started_at)) - :since)::numeric, 2),"
        " round((extract(epoch from max(finished_at)) - :since)::numeric, 2)"
        " FROM agents_app_run WHERE created_at >= to_timestamp(:since);"
    )
    argv = ["psql", "-h", PG_ADMIN["host"], "-p", str(PG_ADMIN["port"]), "-U", PG_ADMIN["user"], "-d", db_name]
    argv += ["-At", "-v", f"since={since_epoch}"]
    result = subprocess.run(argv, input=sql, capture_output=True, text=True, check=False, timeout=60)
    try:
        claimed, finished = (float(value) for value in result.stdout.strip().split("|"))
    except ValueError:
        return {}
    return {"claimed": claimed, "finished": finished}


async def measure(targets: list[Target], n: int, delay: float, db_name: str | None = None) -> list[Result]:
    for target in targets:
        warm = await fire(target, WARMUP_RUNS, delay)
        note = "" if warm.ok == warm.n else f"; NOT ALL OK: {warm.outcome} {warm.errors} {warm.samples}"
        log(f"warm-up {target.mode}: {warm.ok}/{warm.n} ok in {warm.wall_s:.2f}s{note}")
    results = []
    for target in targets:
        await asyncio.sleep(1)
        log(f"{target.mode}: {n} runs at once ...")
        result = await fire(target, n, delay)
        if target.mode != "agentkernel":
            result.timeline.update(runs_timeline(db_name, result.started_epoch))
        log(f"{target.mode}: {result.ok}/{n} ok, wall {result.wall_s:.2f}s")
        results.append(result)
    return results


# --- report -------------------------------------------------------------------------------------


def _counts(counts: dict[str, int]) -> str:
    return " ".join(f"{k}:{v}" for k, v in sorted(counts.items())) or "-"


def comparison(results: list[Result]) -> dict[str, dict[str, float | bool | None]]:
    """Per platform mode: its wall/D, Agent Kernel's, the ratio, and whether the goal is met."""
    ak = next((r for r in results if r.mode == "agentkernel"), None)
    out: dict[str, dict[str, float | bool | None]] = {}
    for r in results:
        if r.mode == "agentkernel":
            continue
        ratio = round(r.wall_per_delay / ak.wall_per_delay, 2) if ak and ak.wall_per_delay else None
        goal = GOALS.get(r.mode)
        met = goal is not None and r.wall_per_delay <= goal and r.ok == r.n
        out[r.mode] = {
            "wall_per_delay": r.wall_per_delay,
            "agentkernel_wall_per_delay": ak.wall_per_delay if ak else None,
            "times_agentkernel": ratio,
            "goal_wall_per_delay": goal,
            "goal_met": met,
        }
    return out


def print_table(results: list[Result], meta: dict[str, object]) -> None:
    print(
        f"N={meta['n']} runs at once, delay D={meta['delay_s']}s; database: {meta['database']}; "
        f"web: {meta['web']}, {meta['web_workers']} workers; celery worker args: {meta['worker_args'] or '-'}"
    )
    header = f"{'mode':<12} {'N':>5} {'wall s':>8} {'wall/D':>7} {'ok':>5}  {'outcomes':<28} errors"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.mode:<12} {r.n:>5} {r.wall_s:>8.2f} {r.wall_per_delay:>7.2f} {r.ok:>5}  "
            f"{_counts(r.outcome):<28} {_counts(r.errors)}"
        )
    for r in results:
        if r.timeline:
            last = ", ".join(f"{what} {at:.2f}" for what, at in r.timeline.items())
            print(
                f"  {r.mode}: the last run {last}, answered {r.wall_s:.2f} (s after the first request)"
                f"; {r.requests} requests"
            )
        for key, sample in r.samples.items():
            print(f"  {r.mode} {key}: {sample}")
    parts = []
    for mode, c in comparison(results).items():
        vs = f"{c['times_agentkernel']}x Agent Kernel's" if c["times_agentkernel"] is not None else "no Agent Kernel"
        goal = f"goal <= {c['goal_wall_per_delay']}: {'met' if c['goal_met'] else 'MISSED'}"
        parts.append(f"{mode} {c['wall_per_delay']:.2f} ({vs}; {goal})")
    ak = next((r for r in results if r.mode == "agentkernel"), None)
    head = f"wall/D vs Agent Kernel's {ak.wall_per_delay:.2f}" if ak else "wall/D"
    print(f"{head}: " + (", ".join(parts) if parts else "no platform mode run"))


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=500, help="runs at once per mode (default 500)")
    p.add_argument("--delay", type=float, default=2.0, help="seconds the model takes, D (default 2)")
    p.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    p.add_argument("--modes", default=" ".join(MODES), help='default "agentkernel sync async"')
    p.add_argument("--no-agentkernel", action="store_true", help="skip Agent Kernel")
    p.add_argument("--worker-args", default="", help="extra flags for the celery worker, one shell-quoted string")
    p.add_argument("--keep-logs", type=Path, metavar="DIR", help="copy every process's log to DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args(argv)
    args.modes = args.modes.replace(",", " ").split()
    unknown = [m for m in args.modes if m not in MODES]
    if unknown or not args.modes:
        p.error(f"--modes: {unknown or 'none'}; choose among {', '.join(MODES)}")
    if args.no_agentkernel:
        args.modes = [m for m in args.modes if m != "agentkernel"]
    if args.n < 1 or args.delay <= 0 or args.web_workers < 1:
        p.error("--n, --delay and --web-workers must be positive")
    return args


def raise_fd_limit() -> None:
    """N connections at once need N file descriptors here and in the servers (which inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """SIGTERM (and SIGHUP) unwind like Ctrl-C, so that the clean-up runs; Ctrl-C works even when
    started with SIGINT ignored (a background job of a non-interactive shell)."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(args: argparse.Namespace, work: Path, procs: Processes, dropped: list[str]) -> tuple[list[Result], dict]:
    redis_port = start_redis(procs)
    ak_url = start_agentkernel(procs, redis_port, args.delay) if "agentkernel" in args.modes else ""
    database_url, db_name, database = create_database(work)
    if db_name:
        dropped.append(db_name)
    log(f"database: {database}")
    worker_args = shlex.split(args.worker_args)
    platform = start_platform(procs, platform_env(redis_port, database_url), args.web_workers, worker_args)
    create_agent(platform, args.delay)
    auth = {"Authorization": f"Bearer {platform.key}"}
    targets = [Target(m, ak_url, {}) if m == "agentkernel" else Target(m, platform.url, auth) for m in args.modes]
    results = asyncio.run(measure(targets, args.n, args.delay, db_name))
    meta = {
        "n": args.n,
        "delay_s": args.delay,
        "database": database,
        "web": platform.web,
        "web_workers": args.web_workers,
        "worker_args": args.worker_args,
    }
    return results, meta


def deployed(prefix: str, body: Callable[[Path, Processes, list[str]], T], keep_logs: Path | None = None) -> T | int:
    """``body(work, procs, databases)`` in a fresh temporary folder ``work``; whatever happens, every
    process it started in ``procs`` is stopped, every database it named in ``databases`` dropped
    and ``work`` removed (its logs copied to ``keep_logs`` first). Its result, or the exit code
    when the set-up failed (2) or Ctrl-C stopped it (130)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    procs = Processes(work)
    databases: list[str] = []
    try:
        with sigterm_as_exit():
            try:
                return body(work, procs, databases)
            except SetupError as exc:
                log(f"set-up failed: {exc}")
                return 2
            except KeyboardInterrupt:
                log("interrupted: stopping everything")
                return 130
            finally:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
                procs.stop_all()
                for name in databases:
                    drop_database(name)
                if keep_logs:
                    keep_logs.mkdir(parents=True, exist_ok=True)
                    for path in work.glob("*.log"):
                        shutil.copy2(path, keep_logs / path.name)
                    log(f"logs copied to {keep_logs}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    outcome = deployed("ak-bench-concurrency-", partial(run, args), args.keep_logs)
    if isinstance(outcome, int):
        return outcome
    results, meta = outcome
    all_ok = all(r.ok == r.n for r in results)
    if args.json:
        payload = {**meta, "modes": [asdict(r) for r in results], "comparison": comparison(results), "ok": all_ok}
        print(json.dumps(payload))
    else:
        print_table(results, meta)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
