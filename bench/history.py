"""Does a run cost the same on a long session as on a short one?

For each backend, time what one run of the platform does on the store (take the lock, load the
last 50 messages and two scopes, commit two messages and a small state change, release) on
sessions that already hold 10, 1,000 and 100,000 messages, and print each median as a ratio to
the smallest session's. The goal is at most 1.2: the cost is flat with the history's length.

    .venv/bin/python bench/history.py [--backends redis,dynamodb] [--sizes 10,1000,100000] [--runs N]
    .venv/bin/python bench/history.py --encrypt [--backends ...] [--sizes 10,1000,10000]
    .venv/bin/python bench/history.py --agents [--frameworks openai_agents,google_adk,pydantic_ai,smolagents]
        [--sizes 10,1000,10000] [--runs N]
    .venv-crewai/bin/python bench/history.py --agents --frameworks crewai  (CrewAI's own environment)

``--agents`` times a tool-calling agent's turn instead, side by side with Agent Kernel's, for each
framework of ``--frameworks`` whose library is installed: ``openai_agents``, ``pydantic_ai``,
``smolagents``, ``crewai`` (``agent_history.py``), ``google_adk`` (``adk_history.py``).

``--encrypt`` times each backend twice over, interleaved run by run on the same service: plain, and
with encryption at rest on (a store whose ``Sealer`` has a key, as ``AK_SESSION__ENCRYPTION_KEY``
gives it) on sessions seeded sealed; it prints both tables and the overhead of encryption per run.

Redis is the one on 127.0.0.1:6379 if it answers, else a redis-server of our own; DynamoDB is a
moto server of our own (tests.dynamodb_server), stopped at the end. Every bench run uses a new
tenant and deletes its sessions when done. Progress goes to stderr, results to stdout; the exit status is 0.

DynamoDB through moto: moto deep-copies the whole table on every transaction and walks the table
on every query, so its wall time grows with the *table*, whatever the store does. All sessions
share one table here, as in production, so every size pays the same emulator cost and the ratio
still answers "does this session's history matter?". Beside the wall time the bench counts what
DynamoDB bills for, the requests and the bytes each run sends and receives, read off botocore's
own event hooks; that is the figure that carries over to the real service. The long sessions are
seeded with batch writes of the items a commit writes (moto's transactions are too slow to seed
100,000 messages), and the bench checks the store reads them back.
"""

from __future__ import annotations

import sys

# bench/ holds queue.py, named like the stdlib's queue: put this folder behind the stdlib.
sys.path.append(sys.path.pop(0))

import argparse
import importlib.util
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from _common import Log, exchange, median, message, moto_url, percentile, redis_url, table, unique_tenant

from sessions_app.stores import build_store
from sessions_app.stores.base import SHARED_SCOPE, SessionKey, SessionStore
from sessions_app.stores.sealing import PLAIN, Sealer

BACKENDS = ("in_memory", "redis", "dynamodb")
DEFAULT_SIZES = (10, 1_000, 100_000)
DEFAULT_RUNS = {"in_memory": 1_000, "redis": 500, "dynamodb": 5}
#: Messages per seeding commit (in-memory and Redis; DynamoDB is seeded with batch writes).
SEED_BATCH = 1_000
WARMUP_RUNS = 5
GOAL = 1.2
AGENT = "bench"
WINDOW = 50
LEASE = 30.0
LOCK_WAIT = 5.0
TTL = 3600
#: The key of ``--encrypt`` (a bench's own, like its tenant).
BENCH_KEY = "bench-history-encryption-key-0123456789abcdef"
SEALED = " sealed"


@dataclass
class Point:
    """The timings of one backend on one session length."""

    backend: str
    size: int
    seed_seconds: float = 0.0
    samples_ms: list[float] = field(default_factory=list)
    wire: list[Wire] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return median(self.samples_ms)

    @property
    def p90_ms(self) -> float:
        return percentile(self.samples_ms, 0.9)

    @property
    def wire_median(self) -> Wire:
        return Wire(*(median([getattr(w, f) for w in self.wire]) for f in ("requests", "sent", "received")))


@dataclass
class Wire:
    """What one run sent to and received from DynamoDB."""

    requests: float = 0
    sent: float = 0
    received: float = 0


class WireCounter:
    """Counts a boto3 client's requests and bytes through botocore's event hooks."""

    def __init__(self, client: object) -> None:
        self.now = Wire()
        events = client.meta.events  # type: ignore[attr-defined]
        events.register("before-send.dynamodb", self._sent)
        events.register("after-call.dynamodb", self._received)

    def _sent(self, request: object, **_: object) -> None:
        body = getattr(request, "body", b"") or b""
        self.now.requests += 1
        self.now.sent += len(body)

    def _received(self, http_response: object, **_: object) -> None:
        self.now.received += len(getattr(http_response, "content", b"") or b"")

    def take(self) -> Wire:
        taken, self.now = self.now, Wire()
        return taken


# --- stores --------------------------------------------------------------------------------------


@contextmanager
def open_stores(backend: str, log: Log, sealers: Sequence[Sealer]) -> Iterator[list[SessionStore]]:
    """A store of ``backend`` per sealer, over one service, closed (and the service stopped) on exit."""
    with ExitStack() as stack:
        stores = []
        services = {"redis": redis_url, "dynamodb": moto_url}
        service = stack.enter_context(services[backend](log)) if backend in services else ""
        for sealer in sealers:
            if backend == "redis":
                store = build_store("redis", ttl=TTL, url=service, sealer=sealer)
            elif backend == "dynamodb":
                options = {"table_name": "ak-bench-sessions", "read_timeout": 600, "sealer": sealer}
                store = build_store("dynamodb", ttl=TTL, endpoint_url=service, **options)
            else:
                store = build_store("in_memory", ttl=0, sealer=sealer)
            store.ensure_schema()
            stack.callback(store.close)
            stores.append(store)
        yield stores


def seed(store: SessionStore, key: SessionKey, count: int, batch: int) -> float:
    """Commit ``count`` messages to a new session, ``batch`` per commit; return the seconds taken."""
    started = time.perf_counter()
    version = 0
    for first in range(0, count, batch):
        messages = [message("user" if n % 2 == 0 else "assistant", n) for n in range(first, min(first + batch, count))]
        state = {SHARED_SCOPE: {"seeded": first + len(messages)}}
        version = store.commit(key, expected_version=version, append=messages, state=state).version
    return time.perf_counter() - started


def seed_dynamodb(store: SessionStore, key: SessionKey, count: int) -> float:
    """Write the items ``count`` committed messages leave (message items, then the meta item)."""
    from sessions_app.stores.dynamodb import DynamoDBStore
    from sessions_app.stores.dynamodb.schema import item_key
    from sessions_app.stores.dynamodb.schema import n as _n
    from sessions_app.stores.dynamodb.schema import s as _s
    from sessions_app.stores.dynamodb.schema import seq as _seq

    assert isinstance(store, DynamoDBStore)
    started = time.perf_counter()
    requests: list[dict] = []
    roles = {"user": 0, "assistant": 0}
    for n in range(count):
        role = "user" if n % 2 == 0 else "assistant"
        roles[role] += 1
        item = {**item_key(key, _seq(n)), "d": _s(store.sealer.seal_text(key, message(role, n).to_json()))}
        requests.append({"PutRequest": {"Item": item}})
        if len(requests) == 25 or n == count - 1:
            store.client.batch_write_item(RequestItems={store.table_name: requests})
            requests = []
    meta = {**item_key(key, "meta"), "v": _n(1), "n": _n(count), "c": {"M": {r: _n(c) for r, c in roles.items()}}}
    store.client.put_item(TableName=store.table_name, Item=meta)
    snapshot = store.load(key, window=1)
    assert snapshot.total == count and snapshot.messages[0].content.startswith(f"assistant message {count - 1}:"), (
        "the store did not read the seeded session back"
    )
    return time.perf_counter() - started


def one_run(store: SessionStore, key: SessionKey, number: int) -> float:
    """What the runner does on the store for one run; returns the milliseconds it took."""
    started = time.perf_counter()
    lock = store.acquire(key, lease=LEASE, wait=LOCK_WAIT)
    try:
        snapshot = store.load(key, scopes=(SHARED_SCOPE, AGENT), window=WINDOW)
        store.commit(
            key,
            expected_version=snapshot.version,
            append=exchange(number, agent=AGENT),
            state={SHARED_SCOPE: {"turns": snapshot.total // 2 + 1}, AGENT: {"last_run": number}},
        )
    finally:
        lock.release()
    return (time.perf_counter() - started) * 1000


# --- the benchmark -------------------------------------------------------------------------------


#: A session of one size on one store (plain or sealed): (store, the session, its point).
Case = tuple[SessionStore, SessionKey, Point]


def measure(cases: list[Case], runs: int) -> None:
    """``runs`` timed runs per case, cases interleaved in a new random order each round."""
    order = list(cases)
    rng = random.Random(1234)
    dynamodb = cases[0][0].name == "dynamodb"
    for number in range(1 if dynamodb else WARMUP_RUNS):
        for store, key, _ in order:
            one_run(store, key, -1 - number)
    counters = {id(store): WireCounter(store.client) for store, _, _ in cases} if dynamodb else {}  # type: ignore[attr-defined]
    for number in range(runs):
        rng.shuffle(order)
        for store, key, point in order:
            point.samples_ms.append(one_run(store, key, number))
            if counters:
                point.wire.append(counters[id(store)].take())


def bench_backend(backend: str, sizes: Sequence[int], runs: int, log: Log, *, encrypt: bool = False) -> list[Point]:
    """Seed a session per size (per store: plain, and sealed with ``encrypt``), time ``runs`` runs
    on each, delete the sessions."""
    tenant = unique_tenant("bench")
    sealers = [PLAIN, Sealer([BENCH_KEY])] if encrypt else [PLAIN]
    with open_stores(backend, log, sealers) as stores:
        cases: list[Case] = []
        try:
            for store in stores:
                label = backend + (SEALED if store.sealer.enabled else "")  # type: ignore[attr-defined]
                for size in sizes:
                    key = SessionKey(tenant, f"history-{size}" + ("-sealed" if label != backend else ""))
                    cases.append((store, key, Point(label, size)))
                    log(f"{label}: seeding {size:,} messages ...")
                    seeded = (
                        seed_dynamodb(store, key, size) if backend == "dynamodb" else seed(store, key, size, SEED_BATCH)
                    )
                    cases[-1][2].seed_seconds = seeded
                    log(f"{label}: seeded {size:,} messages in {seeded:.1f} s")
            started = time.perf_counter()
            measure(cases, runs)
            log(f"{backend}: {runs} runs x {len(cases)} sessions in {time.perf_counter() - started:.1f} s")
        finally:
            for store in stores:
                cleanup(store, [key for s, key, _ in cases if s is store], backend, log)
    return [point for _, _, point in cases]


def cleanup(store: SessionStore, keys: Sequence[SessionKey], backend: str, log: Log) -> None:
    started = time.perf_counter()
    for key in keys:
        store.delete(key)
    log(f"{backend}: deleted {len(keys)} sessions in {time.perf_counter() - started:.1f} s")


# --- output --------------------------------------------------------------------------------------


def report(points: Sequence[Point], print_: Callable[[str], None] = print) -> None:
    """The table of all backends, then a verdict line per backend."""
    rows = []
    verdicts = []
    for backend in dict.fromkeys(p.backend for p in points):
        mine = sorted((p for p in points if p.backend == backend), key=lambda p: p.size)
        base = mine[0].median_ms
        for point in mine:
            rows.append(
                [
                    backend,
                    f"{point.size:,}",
                    str(len(point.samples_ms)),
                    f"{point.median_ms:.3f}",
                    f"{point.p90_ms:.3f}",
                    f"{point.median_ms / base:.2f}",
                    f"{point.seed_seconds:.1f}",
                ]
            )
        worst = max(p.median_ms / base for p in mine)
        flat = "flat" if worst <= GOAL else "NOT flat"
        sign = "<=" if worst <= GOAL else ">"
        label = (
            "dynamodb wall time through moto (emulator-bound: see the docstring)" if backend == "dynamodb" else backend
        )
        verdicts.append(f"{label}: {flat}: max ratio {worst:.2f} {sign} {GOAL} (vs {mine[0].size:,} messages)")
    headers = ["backend", "prior messages", "runs", "median ms", "p90 ms", f"ratio to {points[0].size:,}", "seed s"]
    print_(table(headers, rows))
    wired = [p for p in points if p.wire]
    if wired:
        print_("")
        print_("DynamoDB work per run (median), what the service bills for:")
        print_("")
        wire_rows = []
        for point in wired:
            base = next(p for p in wired if p.backend == point.backend).wire_median  # its smallest size
            w = point.wire_median
            ratio = max(w.requests / base.requests, w.sent / base.sent)
            wire_rows.append(
                [
                    point.backend,
                    f"{point.size:,}",
                    f"{w.requests:.0f}",
                    f"{w.sent:,.0f}",
                    f"{w.received:,.0f}",
                    f"{ratio:.2f}",
                ]
            )
        headers = [
            "backend",
            "prior messages",
            "requests",
            "bytes sent",
            "bytes received",
            f"ratio to {wired[0].size:,}",
        ]
        print_(table(headers, wire_rows))
        worst = max(float(r[-1]) for r in wire_rows)
        flat = "flat" if worst <= GOAL else "NOT flat"
        verdicts.append(f"dynamodb work (requests, bytes sent): {flat}: max ratio {worst:.2f} (vs {wired[0].size:,})")
    overhead = encryption_overhead(points)
    if overhead:
        print_("")
        print_("Encryption at rest: what it adds to one run (sealed median - plain median):")
        print_("")
        print_(table(["backend", "prior messages", "plain ms", "sealed ms", "added ms", "added %"], overhead))
    print_("")
    for verdict in verdicts:
        print_(verdict)


def encryption_overhead(points: Sequence[Point]) -> list[list[str]]:
    """Per backend and size measured both ways, the medians side by side."""
    by = {(p.backend, p.size): p for p in points}
    rows = []
    for (label, size), sealed in by.items():
        plain = by.get((label.removesuffix(SEALED), size)) if label.endswith(SEALED) else None
        if plain is not None:
            added = sealed.median_ms - plain.median_ms
            rows.append(
                [
                    plain.backend,
                    f"{size:,}",
                    f"{plain.median_ms:.3f}",
                    f"{sealed.median_ms:.3f}",
                    f"{added:+.3f}",
                    f"{100 * added / plain.median_ms:+.0f}",
                ]
            )
    return rows


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated, of: " + ", ".join(BACKENDS))
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="prior messages, comma-separated")
    parser.add_argument("--runs", type=int, help="runs per size (default: in-memory 1000, redis 500, dynamodb 50)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--agents", action="store_true", help="a tool-calling agent's turn, beside Agent Kernel's")
    parser.add_argument("--encrypt", action="store_true", help="also with encryption at rest on, and its overhead")
    parser.add_argument(
        "--frameworks",
        default="openai_agents,google_adk",
        help="with --agents: comma-separated (or pydantic_ai, smolagents, crewai)",
    )
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    args.sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    if not args.sizes or min(args.sizes) < 0:
        parser.error("--sizes needs at least one count >= 0")
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    log = Log(args.quiet)
    started = time.perf_counter()
    if args.agents:
        import agent_history

        sizes = args.sizes if argv or "--sizes" in sys.argv else agent_history.SIZES
        runs = args.runs or agent_history.RUNS
        frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
        for framework in agent_history.FRAMEWORKS:
            if framework in frameworks:
                agent_history.run(sizes, runs, log, framework=framework)
        if "google_adk" in frameworks:
            if importlib.util.find_spec("google.adk") is None:
                log("google_adk: Google ADK is not installed (requirements/google_adk.txt): skipped")
            else:
                import adk_history

                adk_history.run(sizes, runs, log)
        return 0
    points: list[Point] = []
    for backend in args.backends:
        runs = args.runs or DEFAULT_RUNS[backend]
        points.extend(bench_backend(backend, args.sizes, runs, log, encrypt=args.encrypt))
    print(f"store time of one run (lock + load window {WINDOW} + commit of 2 messages and state + release)")
    print("")
    report(points)
    log(f"total: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
