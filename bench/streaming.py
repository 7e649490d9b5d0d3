"""N streamed runs at once of an ``openai_chat`` agent whose model sends T tokens at R tokens/s.

The realistic load that tuning is judged by (issue 24): runs that wait on a model which streams.
It reports, per mode, how late each token reaches its client (the time the client read it less
the time the model server wrote it: the platform's added latency per token), how long a client's
request takes to reach the model server, the CPU the web and worker processes spend per run and
per token, the errors, and where the time goes:

    request   client sent ─▶ the view's first stamp on the Run row (authenticated, validated)
              ─▶ its task published (the broker's LPUSH; queued runs) ─▶ claimed (Run.started_at)
              ─▶ the session locked and read (the store's SET NX) ─▶ model received the request
    per token model wrote ─▶ stored in the run's event log ─▶ client received

The broker's, the lock's and the event log's times come from ``redis-cli monitor`` (Redis's
clock; ``--no-trace`` drops them), the model's from the model server, the Run row's from the
database.

Modes: ``sync``, ``POST /run {"stream": true}`` (the reply streamed on the request); ``queued``,
``POST /run {"async": true}`` (202), then ``GET /runs/<id>/events`` followed to its end on the
same connection. Each run is on a new session; each client has its own connection, opened
before the clock starts, and reads with a lean asyncio client (``concurrency.Client``'s).

How: everything is started here as ``bench/concurrency.py`` does (its helpers): a private
``redis-server`` (db 0 sessions and event logs, db 1 the broker), a fresh PostgreSQL database
(SQLite when PostgreSQL does not answer), ``manage.py migrate`` and ``create_tenant``, ``gunicorn
akplatform.asgi:application -w 2`` with ``gunicorn.conf.py``, one ``celery -A akplatform worker``,
``DJANGO_DEBUG=0``; the model server is ``tests/modelserver.py``'s in a process of its own
(``Reply(tokens=T, rate=R)``: each token is the time it was written). The agent is made with
``POST /agents``, its model key a tenant secret (``POST /secrets``). The tenant's caps on event
streams and outbound connections are raised to N, so that the load measures the platform, not
a limit. With tracing on, ``redis-cli monitor`` records every Redis command with its time (it
costs Redis some CPU; the figures say whether it was on).

Times are ``time.time()`` on one machine: the model server's, Redis's, the database's and the
client's clocks are the same clock. CPU is read from ``/proc`` for the web tier's process group
(gunicorn's arbiter and workers) and the worker's (Celery's main thread and its pool).

    .venv/bin/python bench/streaming.py [--n 200] [--tokens 40] [--rate 20]
        [--modes "sync queued"] [--runs 1] [--web-workers 2] [--no-trace] [--keep-logs DIR] [--json]

Exit code 1 when a run failed or lost a token, 2 when the set-up failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from multiprocessing.connection import Connection as Pipe
from pathlib import Path

# bench/ after the stdlib on sys.path: bench/queue.py must not hide the stdlib's queue.
sys.path.append(sys.path.pop(0))

import httpx
from _common import group_cpu_seconds, group_cpu_since, percentile
from concurrency import (
    PG_ADMIN,
    Client,
    Connection,
    Processes,
    SetupError,
    create_database,
    deployed,
    platform_env,
    raise_fd_limit,
    start_platform,
    start_redis,
)

from tests.modelserver import ModelServer, Reply, stamps

AGENT = "streamer"
MODES = ("sync", "queued")
WARMUP_RUNS = 4
RUN_TIMEOUT_S = 300.0


def log(message: str) -> None:
    print(f"[streaming] {message}", file=sys.stderr, flush=True)


# --- the model server, in a process of its own -------------------------------------------------


def _serve_model(pipe: Pipe, tokens: int, rate: float) -> None:
    """The child: serve ``tokens`` stamped tokens at ``rate`` per request; answer the parent's
    ``"requests"`` with ``{last user message: time it arrived}``, stop on ``"stop"``."""
    with ModelServer(models=("bench",)) as server:
        server.reply_with(lambda body: Reply(tokens=tokens, rate=rate, usage=(10, tokens)))
        pipe.send(server.url)
        while (command := pipe.recv()) != "stop":
            if command == "requests":
                arrived = {r.body["messages"][-1]["content"]: r.at for r in server.requests if r.body.get("messages")}
                pipe.send(arrived)
                server.clear()


class ModelProcess:
    """``tests/modelserver.py`` in a forked process (its threads off the client's GIL)."""

    def __init__(self, tokens: int, rate: float) -> None:
        context = multiprocessing.get_context("fork")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=_serve_model, args=(child, tokens, rate), daemon=True)
        self.process.start()
        if not self.pipe.poll(30):
            raise SetupError("the model server did not start")
        self.url: str = self.pipe.recv()

    def arrivals(self) -> dict[str, float]:
        """When each request arrived, by its message, since the last call."""
        self.pipe.send("requests")
        return self.pipe.recv()

    def stop(self) -> None:
        self.pipe.send("stop")
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()


# --- one run, as a client sees it ---------------------------------------------------------------


@dataclass
class Sample:
    message: str
    session_id: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex}")
    sent: float = 0.0
    run_id: str = ""
    accepted: float | None = None  # a queued run's 202
    tokens: list[tuple[float, float]] = field(default_factory=list)  # (written, received)
    text: str = ""
    result: str | None = None
    ended: float = 0.0
    error: str = ""


async def _head(c: Connection) -> tuple[int, bool, int]:
    """An answer's status line and headers: (status, chunked, content length)."""
    line = await c.reader.readline()
    if not line:
        raise ConnectionError("the server closed the connection")
    chunked, length = False, 0
    while (header := await c.reader.readline()) not in (b"\r\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        if name.strip().lower() == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif name.strip().lower() == "content-length":
            length = int(value)
    return int(line.split()[1]), chunked, length


async def _stream(c: Connection, method: str, path: str, body: dict | None, sample: Sample) -> None:
    """Send a request whose answer is an event stream; record its events into ``sample``."""
    data = b"" if body is None else json.dumps(body).encode()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {c.client.host}:{c.client.port}\r\n{c.client.headers}"
        f"Accept: text/event-stream\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    c.writer.write(head.encode() + data)
    status, chunked, length = await _head(c)
    if status != 200 or not chunked:
        text = await c.reader.readexactly(length) if length else b""
        sample.error = f"{method} {path.split('/')[1]} {status}"
        sample.text = text.decode(errors="replace")[:300]
        return
    buffer = b""
    while size := int((await c.reader.readline()).split(b";")[0], 16):
        buffer += (await c.reader.readexactly(size + 2))[:-2]
        now = time.time()
        *blocks, buffer = buffer.split(b"\n\n")
        for block in blocks:
            kind, payload = "message", b""
            for line in block.split(b"\n"):
                if line.startswith(b"event:"):
                    kind = line[6:].strip().decode()
                elif line.startswith(b"data:"):
                    payload = line[5:].strip()
            if payload:
                _event(sample, now, kind, json.loads(payload))
    await c.reader.readline()  # the blank line after the last chunk


def _event(sample: Sample, now: float, kind: str, data: dict) -> None:
    if kind == "run":
        sample.run_id = data["run_id"]
    elif kind == "delta":
        sample.text += data["text"]
        sample.tokens += [(written, now) for written in stamps(data["text"])]
    elif kind == "done":
        sample.result, sample.ended = data["result"], now
    else:
        sample.error, sample.ended = f"event {kind}: {data.get('code')}", now


async def _one(mode: str, c: Connection, sample: Sample) -> None:
    body = {"agent": AGENT, "message": sample.message, "session_id": sample.session_id}
    sample.sent = time.time()
    if mode == "sync":
        await _stream(c, "POST", "/run", {**body, "stream": True}, sample)
        return
    status, text = await c.request("POST", "/run", {**body, "async": True})
    if status != 202:
        sample.error, sample.text = f"POST run {status}", text.decode(errors="replace")[:300]
        return
    sample.accepted, sample.run_id = time.time(), json.loads(text)["run_id"]
    await _stream(c, "GET", f"/runs/{sample.run_id}/events", None, sample)


async def fire(url: str, key: str, mode: str, n: int, tag: str) -> tuple[list[Sample], float, float]:
    """N runs at once (connections opened first): their samples, when the first was sent, the wall time."""
    client = Client(url, {"Authorization": f"Bearer {key}"})
    connections = await asyncio.gather(*(client.connect() for _ in range(n)))
    samples = [Sample(f"bench {tag} {i} {uuid.uuid4().hex[:8]}") for i in range(n)]

    async def one(c: Connection, sample: Sample) -> None:
        try:
            await asyncio.wait_for(_one(mode, c, sample), RUN_TIMEOUT_S)
        except Exception as exc:
            sample.error = sample.error or type(exc).__name__
            sample.text = sample.text or str(exc)[:300]

    started, t0 = time.time(), time.perf_counter()
    await asyncio.gather(*(one(c, s) for c, s in zip(connections, samples, strict=True)))
    wall = time.perf_counter() - t0
    for c in connections:
        c.close()
    return samples, started, wall


# --- what the platform and Redis recorded -------------------------------------------------------

RUN_TIMES = ("created_at", "enqueued_at", "started_at", "finished_at")


def run_times(database_url: str, db_name: str | None, ids: list[str]) -> dict[str, dict[str, float | None]]:
    """The Run rows' timing fields (seconds since the epoch), by run id."""
    if not ids:
        return {}
    out: dict[str, dict[str, float | None]] = {}
    if db_name is not None:
        columns = ", ".join(f"extract(epoch from {name})" for name in RUN_TIMES)
        listed = ",".join(f"'{i}'" for i in ids)
        sql = f"SELECT id, {columns} FROM agents_app_run WHERE id IN ({listed});"  # noqa: S608 - our uuids
        argv = ["psql", "-h", PG_ADMIN["host"], "-p", str(PG_ADMIN["port"]), "-U", PG_ADMIN["user"], "-d", db_name]
        result = subprocess.run([*argv, "-At"], input=sql, capture_output=True, text=True, check=False, timeout=60)
        for line in result.stdout.splitlines():
            run_id, *values = line.split("|")
            out[run_id] = {n: float(v) if v else None for n, v in zip(RUN_TIMES, values, strict=True)}
        return out
    with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
        rows = db.execute(
            f"SELECT id, {', '.join(RUN_TIMES)} FROM agents_app_run WHERE id IN ({','.join('?' * len(ids))})",  # noqa: S608
            [i.replace("-", "") for i in ids],
        )
        for run_id, *values in rows:
            out[str(uuid.UUID(run_id))] = {n: _sqlite_time(v) for n, v in zip(RUN_TIMES, values, strict=True)}
    return out


def _sqlite_time(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()


_MONITOR_LINE = re.compile(rb"^(\d+\.\d+) ")
_STAMP = re.compile(rb"t(\d+\.\d{6}) ")


_SESSION = re.compile(rb"bench-[0-9a-f]{32}")
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Trace:
    """What ``redis-cli monitor`` saw, in Redis's time of each command: when each token was first
    written (the event log's append that carried it), when each run's task was published (the
    broker's ``LPUSH`` that named it), and when each session's lock was taken (the run's first
    store command: the lock and the read of the session's window, in one ``MULTI``)."""

    stored: dict[float, float] = field(default_factory=dict)
    published: dict[str, float] = field(default_factory=dict)
    locked: dict[str, float] = field(default_factory=dict)  # by session id: its lock taken (SET NX)


def read_trace(monitor_log: Path, offset: int) -> Trace:
    """The trace from ``offset`` of the monitor's log on."""
    trace = Trace()
    with monitor_log.open("rb") as log_file:
        log_file.seek(offset)
        for line in log_file:
            at = _MONITOR_LINE.match(line)
            if at is None:
                continue
            when = float(at.group(1))
            if b'"LPUSH"' in line:
                for run_id in _UUID.findall(line):
                    trace.published.setdefault(run_id.decode(), when)
            elif line.find(b'"SET"') > 0 and b':lock"' in line and (session := _SESSION.search(line)):
                trace.locked.setdefault(session.group().decode(), when)
            for written in _STAMP.findall(line):
                trace.stored.setdefault(float(written), when)
    return trace


# --- figures ------------------------------------------------------------------------------------


def _p(values: list[float]) -> dict[str, float] | None:
    """p50, p99 and max, in milliseconds."""
    if not values:
        return None
    return {q: round(1000 * (percentile(values, f) if f < 1 else max(values)), 1) for q, f in PERCENTILES}


PERCENTILES = (("p50", 0.5), ("p99", 0.99), ("max", 1.0))


@dataclass
class Result:
    mode: str
    round: int
    n: int
    wall_s: float
    ok: int
    errors: dict[str, int]
    samples: dict[str, str]
    request_to_model_ms: dict[str, float] | None
    token_ms: dict[str, float] | None  # written -> client received: the added latency per token
    first_token_ms: dict[str, float] | None
    steps_ms: dict[str, dict[str, float] | None]  # where the time goes
    cpu_ms: dict[str, float]


def figures(
    mode: str,
    rnd: int,
    samples: list[Sample],
    wall: float,
    tokens: int,
    arrived: dict[str, float],
    rows: dict[str, dict[str, float | None]],
    trace: Trace | None,
    cpu: dict[str, float],
) -> Result:
    errors: Counter[str] = Counter()
    texts: dict[str, str] = {}
    for s in samples:
        problem = s.error
        if not problem and (s.result is None or s.result != s.text):
            problem = "result differs from the deltas"
        elif not problem and len(s.tokens) != tokens:
            problem = f"{len(s.tokens)} tokens, not {tokens}"
        if problem:
            errors[problem] += 1
            texts.setdefault(problem, s.text)
    good = [s for s in samples if s.result is not None and not s.error]

    def points(s: Sample) -> dict[str, float | None]:
        row = rows.get(s.run_id) or {}
        # The view's first stamp on the run: a sync run's started_at, a queued one's enqueued_at,
        # or created_at, whichever it took first.
        made = [t for name in ("created_at", "enqueued_at", "started_at") if (t := row.get(name)) is not None]
        return {
            "sent": s.sent,
            "accepted": s.accepted,
            "view": min(made, default=None),
            "published": trace.published.get(s.run_id) if trace else None,
            "claimed": row.get("started_at"),
            "locked": trace.locked.get(s.session_id) if trace else None,
            "model": arrived.get(s.message),
        }

    timed = [points(s) for s in good]

    def between(start: str, end: str) -> dict[str, float] | None:
        pairs = ((t[start], t[end]) for t in timed)
        return _p([b - a for a, b in pairs if a is not None and b is not None])

    steps = {"sent -> view stamped the run (Run's first time)": between("sent", "view")}
    if mode == "queued":
        if trace is not None:
            steps["view -> task published (broker LPUSH)"] = between("view", "published")
            steps["task published -> claimed (Run.started_at)"] = between("published", "claimed")
        else:
            steps["view -> claimed (Run.started_at)"] = between("view", "claimed")
        steps.update(_to_model("claimed", between, trace is not None))
        steps["(sent -> 202 received)"] = between("sent", "accepted")
    else:
        steps.update(_to_model("view", between, trace is not None))
    latencies = [received - written for s in good for written, received in s.tokens]
    if trace is not None:
        pairs = [(trace.stored.get(w), w, r) for s in good for w, r in s.tokens]
        if mode == "queued":
            steps["token: written -> stored in the event log"] = _p([at - w for at, w, _ in pairs if at is not None])
            steps["token: stored -> client"] = _p([r - at for at, _, r in pairs if at is not None])
        else:
            steps["(token: written -> stored, beside the stream)"] = _p([at - w for at, w, _ in pairs if at])
    per_run = 1000 / max(len(samples), 1)
    return Result(
        mode=mode,
        round=rnd,
        n=len(samples),
        wall_s=round(wall, 2),
        ok=len(samples) - sum(errors.values()),
        errors=dict(errors),
        samples=texts,
        request_to_model_ms=between("sent", "model"),
        token_ms=_p(latencies),
        first_token_ms=_p([s.tokens[0][1] - s.tokens[0][0] for s in good if s.tokens]),
        steps_ms=steps,
        cpu_ms={
            **{f"{who} per run": round(seconds * per_run, 2) for who, seconds in cpu.items()},
            **{f"{who} per token": round(seconds * per_run / tokens, 3) for who, seconds in cpu.items()},
        },
    )


def _to_model(start: str, between: Callable[[str, str], dict[str, float] | None], traced: bool) -> dict:
    """The steps from ``start`` (the run under way in its process) to the model's hearing of it."""
    if not traced:
        return {f"{start} -> model received": between(start, "model")}
    return {
        f"{start} -> session locked and read (store)": between(start, "locked"),
        "session locked -> model received": between("locked", "model"),
    }


# --- the bench ----------------------------------------------------------------------------------


def setup_agent(url: str, key: str, model_url: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    secret = httpx.post(f"{url}/secrets", json={"name": "model-key", "value": "sk-bench"}, headers=headers, timeout=30)
    config = {"base_url": model_url, "model": "bench", "api_key": {"secret": "model-key"}}
    agent = httpx.post(
        f"{url}/agents", json={"name": AGENT, "framework": "openai_chat", "config": config}, headers=headers, timeout=30
    )
    for r in (secret, agent):
        if r.status_code not in (200, 201):
            raise SetupError(f"{r.request.method} {r.request.url.path} answered {r.status_code}: {r.text[:300]}")


def run(args: argparse.Namespace, work: Path, procs: Processes, dropped: list[str]) -> tuple[list[Result], dict]:
    redis_port = start_redis(procs)
    monitor = (
        procs.start("monitor", ["redis-cli", "-p", str(redis_port), "monitor"], dict(os.environ), work)
        if args.trace
        else None
    )
    database_url, db_name, database = create_database(work)
    if db_name:
        dropped.append(db_name)
    log(f"database: {database}")
    cap = str(max(args.n + 10, 100))
    env = platform_env(redis_port, database_url) | {
        "AK_AGENTS__ALLOW_PRIVATE_URLS": "1",  # the model server is on 127.0.0.1
        "AK_AGENTS__MAX_CONNECTIONS_PER_TENANT": str(min(int(cap), 1000)),
        "AK_LIMITS__EVENT_STREAMS": cap,
        "AK_LIMITS__CONCURRENT_RUNS": cap,
    }
    platform = start_platform(procs, env, args.web_workers, [])
    groups = {p.name: p.popen.pid for p in procs.started if p.name in ("web", "worker")}
    model = ModelProcess(args.tokens, args.rate)
    try:
        log(f"model server on {model.url}: {args.tokens} tokens at {args.rate}/s")
        setup_agent(platform.url, platform.key, model.url)
        results: list[Result] = []
        offset = 0
        for mode in args.modes:
            warm, _, _ = asyncio.run(fire(platform.url, platform.key, mode, WARMUP_RUNS, "warm"))
            log(f"warm-up {mode}: {sum(1 for s in warm if s.result is not None)}/{WARMUP_RUNS} ok")
        model.arrivals()
        for rnd in range(1, args.runs + 1):
            for mode in args.modes:
                time.sleep(1)
                if monitor is not None:
                    offset = monitor.log_path.stat().st_size
                before = {who: group_cpu_seconds([pgid]) for who, pgid in groups.items()}
                client = time.process_time()
                samples, _, wall = asyncio.run(fire(platform.url, platform.key, mode, args.n, f"{mode}{rnd}"))
                cpu = {who: sum(group_cpu_since([pgid], before[who])) for who, pgid in groups.items()}
                cpu["client"] = time.process_time() - client
                time.sleep(0.5)  # the monitor's last lines
                trace = read_trace(monitor.log_path, offset) if monitor is not None else None
                rows = run_times(database_url, db_name, [s.run_id for s in samples if s.run_id])
                result = figures(mode, rnd, samples, wall, args.tokens, model.arrivals(), rows, trace, cpu)
                log(f"{mode} round {rnd}: {result.ok}/{result.n} ok in {result.wall_s:.2f}s")
                results.append(result)
    finally:
        model.stop()
    meta = {
        "n": args.n,
        "tokens": args.tokens,
        "rate": args.rate,
        "database": database,
        "web": f"{platform.web}, {args.web_workers} workers",
        "trace": args.trace,
        "caps": cap,
    }
    return results, meta


def _ms(p: dict[str, float] | None) -> str:
    return "-" if p is None else f"{p['p50']:.1f} / {p['p99']:.1f} / {p['max']:.0f}"


def print_report(results: list[Result], meta: dict) -> None:
    print(
        f"N={meta['n']} runs at once, {meta['tokens']} tokens at {meta['rate']}/s; database: {meta['database']}; "
        f"web: {meta['web']}; 1 celery worker; Redis trace {'on' if meta['trace'] else 'off'}; "
        f"tenant caps {meta['caps']}. Milliseconds as p50 / p99 / max."
    )
    for r in results:
        print(f"\n{r.mode} (round {r.round}): {r.ok}/{r.n} ok, wall {r.wall_s:.2f} s; errors: {r.errors or 'none'}")
        print(f"  added latency per token (model wrote -> client received)  {_ms(r.token_ms)}")
        print(f"  the first token                                           {_ms(r.first_token_ms)}")
        print(f"  request -> model received                                 {_ms(r.request_to_model_ms)}")
        for step, p in r.steps_ms.items():
            print(f"    {step:<55} {_ms(p)}")
        print("  CPU ms: " + ", ".join(f"{k} {v}" for k, v in r.cpu_ms.items()))
        for problem, text in r.samples.items():
            print(f"  {problem}: {text}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200, help="runs at once (default 200)")
    p.add_argument("--tokens", type=int, default=40, help="tokens per answer (default 40)")
    p.add_argument("--rate", type=float, default=20.0, help="tokens per second (default 20)")
    p.add_argument("--modes", default=" ".join(MODES), help='default "sync queued"')
    p.add_argument("--runs", type=int, default=1, help="rounds of every mode (default 1)")
    p.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    p.add_argument("--no-trace", dest="trace", action="store_false", help="no redis-cli monitor")
    p.add_argument("--keep-logs", type=Path, metavar="DIR", help="copy every process's log to DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    args = p.parse_args(argv)
    args.modes = args.modes.replace(",", " ").split()
    if not args.modes or set(args.modes) - set(MODES):
        p.error(f"--modes: choose among {', '.join(MODES)}")
    if min(args.n, args.tokens, args.runs, args.web_workers) < 1 or args.rate <= 0:
        p.error("--n, --tokens, --rate, --runs and --web-workers must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    outcome = deployed("ak-bench-streaming-", partial(run, args), args.keep_logs)
    if isinstance(outcome, int):
        return outcome
    results, meta = outcome
    if args.json:
        print(json.dumps({**meta, "results": [asdict(r) for r in results]}))
    else:
        print_report(results, meta)
    return 0 if all(r.ok == r.n for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
