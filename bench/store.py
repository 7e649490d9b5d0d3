"""How much does the Redis store cost over raw redis-py?

A *cycle* is what a run does on the store, without the lock: ``load`` (window 50, two scopes) and
``commit`` (two messages and a small state change), on a session that already has some history.
A *pair* is a raw redis-py ``GET`` of as many bytes as ``load`` returns and a ``SET`` of as many
bytes as ``commit`` writes, through a plain ``redis.Redis`` client with its own pool, against the
same server. Both run for a fixed time, alternating over a few rounds; the ratio of the median
cycles/s to the median pairs/s should be at least 0.5.

    .venv/bin/python bench/store.py [--seconds 3] [--rounds 3] [--history 1000]
"""

from __future__ import annotations

import sys

# bench/ holds queue.py, named like the stdlib's queue: put this folder behind the stdlib.
sys.path.append(sys.path.pop(0))

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis
from _common import Log, exchange, median, message, redis_url, table, unique_tenant

from sessions_app.stores import build_store
from sessions_app.stores.base import SHARED_SCOPE, Message, SessionKey, SessionStore, Snapshot, dumps

GOAL = 0.5
AGENT = "bench"
WINDOW = 50
TTL = 3600


@dataclass(frozen=True)
class Payload:
    """The bytes one cycle moves: what ``load`` returns and what ``commit`` writes."""

    read: int
    write: int


@dataclass
class Round:
    cycles_per_s: float
    pairs_per_s: float

    @property
    def ratio(self) -> float:
        return self.cycles_per_s / self.pairs_per_s


# --- the two loops -------------------------------------------------------------------------------


def changes(number: int) -> dict[str, dict[str, int]]:
    """The small state change a run makes."""
    return {SHARED_SCOPE: {"turns": number}, AGENT: {"last_run": number}}


def cycle(store: SessionStore, key: SessionKey, number: int) -> tuple[Snapshot, list[Message]]:
    """One load + commit, as a run does them (without the lock)."""
    snapshot = store.load(key, scopes=(SHARED_SCOPE, AGENT), window=WINDOW)
    appended = exchange(number, agent=AGENT)
    store.commit(key, expected_version=snapshot.version, append=appended, state=changes(number))
    return snapshot, appended


def payload_of(snapshot: Snapshot, appended: Sequence[Message], number: int) -> Payload:
    """The JSON size of what a cycle reads (messages + state) and writes (messages + state change)."""
    read = sum(len(m.to_json().encode()) for m in snapshot.messages) + len(dumps(snapshot.state).encode())
    write = sum(len(m.to_json().encode()) for m in appended) + len(dumps(changes(number)).encode())
    return Payload(read=read, write=write)


def per_second(step: Callable[[int], object], seconds: float) -> float:
    """Call ``step(n)`` for n = 0, 1, ... for ``seconds``; return the calls per second."""
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        step(count)
        count += 1
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - started)


# --- the benchmark -------------------------------------------------------------------------------


def seed(store: SessionStore, key: SessionKey, count: int) -> None:
    """Give the session ``count`` messages of history, 1,000 per commit."""
    version = 0
    for first in range(0, count, 1_000):
        batch = [message("user" if n % 2 == 0 else "assistant", n) for n in range(first, min(first + 1_000, count))]
        version = store.commit(key, expected_version=version, append=batch).version


def run(url: str, *, seconds: float, rounds: int, history: int, log: Log) -> tuple[Payload, list[Round]]:
    """Alternate ``rounds`` rounds of store cycles and raw pairs, ``seconds`` each."""
    tenant = unique_tenant("bench")
    key = SessionKey(tenant, "store-cycles")
    raw_read, raw_write = f"akbench:{tenant}:read", f"akbench:{tenant}:write"
    store = build_store("redis", ttl=TTL, url=url)
    raw = redis.Redis.from_url(url)
    try:
        seed(store, key, history)
        payload = payload_of(*cycle(store, key, 0), 0)
        raw.set(raw_read, b"r" * payload.read, ex=TTL)
        written = b"w" * payload.write

        def pair(_: int) -> None:
            raw.get(raw_read)
            raw.set(raw_write, written, ex=TTL)

        def store_cycle(number: int) -> None:
            cycle(store, key, number)

        per_second(store_cycle, min(0.5, seconds))  # warm both paths up
        per_second(pair, min(0.5, seconds))
        results = []
        for number in range(rounds):
            cycles = per_second(store_cycle, seconds)
            pairs = per_second(pair, seconds)
            log(f"round {number + 1}: {cycles:,.0f} cycles/s, {pairs:,.0f} pairs/s")
            results.append(Round(cycles, pairs))
        return payload, results
    finally:
        store.delete(key)
        raw.delete(raw_read, raw_write)
        store.close()
        raw.close()


def report(payload: Payload, rounds: Sequence[Round], print_: Callable[[str], None] = print) -> None:
    print_(
        f"Redis store: load (window {WINDOW}) + commit (2 messages + state) vs raw GET {payload.read:,} B"
        f" + SET {payload.write:,} B"
    )
    print_("")
    rows = [
        [str(n), f"{r.cycles_per_s:,.0f}", f"{r.pairs_per_s:,.0f}", f"{r.ratio:.2f}"] for n, r in enumerate(rounds, 1)
    ]
    cycles = median([r.cycles_per_s for r in rounds])
    pairs = median([r.pairs_per_s for r in rounds])
    rows.append(["median", f"{cycles:,.0f}", f"{pairs:,.0f}", f"{cycles / pairs:.2f}"])
    print_(table(["round", "store cycles/s", "raw GET+SET pairs/s", "ratio"], rows))
    print_("")
    ratio = cycles / pairs
    verdict = f"ok: ratio {ratio:.2f} >= {GOAL}" if ratio >= GOAL else f"TOO SLOW: ratio {ratio:.2f} < {GOAL}"
    print_(f"redis store: {verdict}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each timed loop (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of store cycles then raw pairs (default 3)")
    parser.add_argument("--history", type=int, default=1_000, help="messages in the session beforehand (default 1000)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1 or args.history < 0:
        parser.error("--seconds must be > 0, --rounds >= 1, --history >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    log = Log(args.quiet)
    started = time.perf_counter()
    with redis_url(log) as url:
        payload, rounds = run(url, seconds=args.seconds, rounds=args.rounds, history=args.history, log=log)
    report(payload, rounds)
    log(f"total: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
