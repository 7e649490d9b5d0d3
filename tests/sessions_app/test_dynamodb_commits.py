"""The DynamoDB store's commits on moto's server: a long sequential conversation, and every way a
commit's transaction can be cancelled, each mapped to what it means (never an unexplained 409).

``DynamoProxy`` forwards calls to moto and can hold an answer back past the client's read timeout
(botocore then sends the call again), run a competing write as a transaction reaches the table,
or give the answers that DynamoDB gives and moto cannot, in DynamoDB's own format.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from agents_app.frameworks import AgentSpec
from agents_app.runner import Runner
from sessions_app.stores.base import (
    Message,
    PayloadTooLarge,
    RunRevoked,
    SessionBusy,
    SessionKey,
    StoreError,
    StoreUnavailable,
    VersionConflict,
)
from sessions_app.stores.dynamodb import DynamoDBStore, commits
from tests import services

#: The client's read timeout behind the proxy, and how long a held answer waits (past it).
READ_TIMEOUT = 1.0
HOLD = 1.6


def msgs(*contents: str, role: str = "user") -> list[Message]:
    return [Message(role=role, content=c, agent="a") for c in contents]


@dataclass
class Rule:
    """What the proxy does to the next ``times`` calls of ``operation``."""

    operation: str
    times: float = 1
    before: Callable[[], None] | None = None  # runs before the call reaches moto
    hold: float = 0.0  # seconds the answer is held back after moto gave it
    answer: tuple[int, dict[str, Any]] | None = None  # answered instead of moto: (status, JSON body)


class DynamoProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rules: list[Rule] = []
        self.calls: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                operation = (self.headers.get("X-Amz-Target") or "").rsplit(".", 1)[-1]
                rule = proxy._take(operation)
                if rule is not None and rule.before is not None:
                    rule.before()
                if rule is not None and rule.answer is not None:
                    status, data = rule.answer[0], json.dumps(rule.answer[1]).encode()
                    headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", "proxy")]
                else:
                    status, headers, data = proxy._forward(self.path, self.headers.items(), body)
                if rule is not None and rule.hold:
                    time.sleep(rule.hold)
                try:
                    self.send_response(status)
                    for name, value in headers:
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client stopped waiting
                    self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def on(self, operation: str, **rule: Any) -> None:
        with self._lock:
            self.rules.append(Rule(operation, **rule))

    def count(self, operation: str) -> int:
        return self.calls.count(operation)

    def _take(self, operation: str) -> Rule | None:
        with self._lock:
            self.calls.append(operation)
            for rule in self.rules:
                if rule.operation == operation and rule.times > 0:
                    rule.times -= 1
                    return rule
        return None

    def _forward(self, path: str, headers: Any, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        skip = {"host", "connection", "content-length", "transfer-encoding"}
        conn = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            conn.request("POST", path, body, headers={k: v for k, v in headers if k.lower() not in skip})
            reply = conn.getresponse()
            data = reply.read()
            kept = [(k, v) for k, v in reply.getheaders() if k.lower() not in skip]
            return reply.status, kept, data
        finally:
            conn.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(dynamodb_url: str) -> Iterator[DynamoProxy]:
    server = DynamoProxy(dynamodb_url)
    yield server
    server.close()


@pytest.fixture
def behind(make_store, proxy: DynamoProxy) -> DynamoDBStore:
    """A store that reaches moto through the proxy, with a short read timeout."""
    return make_store("dynamodb", endpoint_url=proxy.url, read_timeout=READ_TIMEOUT)


@pytest.fixture
def direct(make_store) -> DynamoDBStore:
    """Another process's store on the same table, straight to moto."""
    return make_store("dynamodb")


def cancelled(*codes: str, message: str = "") -> tuple[int, dict[str, Any]]:
    """DynamoDB's answer to a transaction it cancelled: one reason per action, in order."""
    reasons = [{"Code": code, "Message": message} if code != "None" else {"Code": "None"} for code in codes]
    listed = ", ".join(codes)
    return 400, {
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{listed}]",
        "CancellationReasons": reasons,
    }


#: Commits whose answer is lost or late are reproduced one by one by the proxy tests below.
TURNS = 300


@pytest.fixture
def own_moto(tmp_path) -> Iterator[str]:
    """A moto server of the test's own, gone with it (whatever moto keeps goes too)."""
    server = services.moto_server(tmp_path).start(timeout=60)
    yield server.url
    server.stop()


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="no database in it: the suite's SQLite pass runs it",
)
def test_a_long_sequential_conversation_never_conflicts(make_store, own_moto: str, tenant_slug: str) -> None:
    """Through the runner (lock, load, echo, commit and release) on moto's server, whose commits
    slow down as the table grows (moto copies the whole table once per action of a transaction)
    until some outlast the client's read timeout and botocore sends them again: every turn
    succeeds and the history holds every message once, in order."""
    store = make_store("dynamodb", endpoint_url=own_moto)
    runner = Runner(store=store, lease=30, wait=120, window=50)
    key = SessionKey(tenant_slug, "long")
    agent = AgentSpec("echo", "echo")
    prompts = [f"turn {turn:04d} " + "abcdefghij" * 15 for turn in range(1, TURNS + 1)]  # 160 characters

    async def converse() -> list[str]:
        return [(await runner.execute(agent, key, prompt)).reply for prompt in prompts]

    failed: Counter[str] = Counter()  # attempts that timed out, failed (5xx) or were cancelled, by operation

    def attempt(response_dict: dict | None = None, exception: Exception | None = None, **kwargs: Any) -> None:
        status = (response_dict or {}).get("status_code", 0)
        if exception is not None or status >= 400:
            operation = kwargs["event_name"].rsplit(".", 1)[-1]
            failed[f"{operation} {type(exception).__name__ if exception else status}"] += 1

    store.client.meta.events.register("response-received.dynamodb", attempt)
    started = time.monotonic()
    replies = asyncio.run(converse())
    elapsed = time.monotonic() - started

    assert replies == [f"echo[turns={turn}]: {prompt}" for turn, prompt in enumerate(prompts, start=1)]
    snap = store.load(key, window=0)
    assert (snap.version, snap.total, snap.role_counts) == (TURNS, 2 * TURNS, {"user": TURNS, "assistant": TURNS})
    history = [m for start in range(0, 2 * TURNS, 500) for m in store.history(key, start=start, limit=500)]
    assert [(m.role, m.content) for m in history] == [
        pair
        for prompt, reply in zip(prompts, replies, strict=True)
        for pair in (("user", prompt), ("assistant", reply))
    ]
    print(f"{TURNS} turns in {elapsed:.0f} s; attempts that failed and were recovered from: {dict(failed)}")


def test_a_commit_whose_answer_was_lost_succeeds(behind: DynamoDBStore, proxy: DynamoProxy, key: SessionKey) -> None:
    """moto applies the commit, its answer comes after the read timeout, botocore sends it again
    and moto cancels that by the version condition (it ignores ``ClientRequestToken``)."""
    behind.commit(key, expected_version=0, append=msgs("q1", "a1"))
    lock, snap = behind.acquire_and_load(key, lease=30, wait=0, run_id="r2")
    proxy.on("TransactWriteItems", hold=HOLD)

    result = behind.commit_and_release(lock, expected_version=snap.version, append=msgs("q2", "a2"), run_id="r2")

    assert proxy.count("TransactWriteItems") == 3  # the first commit, the lost attempt, botocore's retry
    assert (result.version, result.total) == (2, 4)
    assert [m.content for m in behind.history(key)] == ["q1", "a1", "q2", "a2"]
    assert behind.committed(key, "r2") == 2
    behind.acquire(key, lease=1, wait=0).release()  # and the lock was released


def test_an_unconditional_commit_whose_answer_was_lost_appends_once(
    behind: DynamoDBStore, proxy: DynamoProxy, key: SessionKey
) -> None:
    behind.commit(key, expected_version=None, append=msgs("one"))
    proxy.on("TransactWriteItems", hold=HOLD)

    assert behind.commit(key, expected_version=None, append=msgs("two")).total == 2

    assert [m.content for m in behind.history(key)] == ["one", "two"]
    assert behind.load(key).version == 2


def test_an_event_append_whose_answer_was_lost_is_not_repeated(
    behind: DynamoDBStore, proxy: DynamoProxy, key: SessionKey
) -> None:
    proxy.on("TransactWriteItems", hold=HOLD)

    assert behind.append_events(key, "run-1", [("run", {}), ("delta", {"text": "hi"})]) == 2
    assert behind.append_events(key, "run-1", [("done", {})]) == 3

    assert [(e.id, e.kind) for e in behind.read_events(key, "run-1")] == [(1, "run"), (2, "delta"), (3, "done")]


def test_an_acquire_whose_answer_was_lost_holds_the_lock(
    behind: DynamoDBStore, proxy: DynamoProxy, key: SessionKey
) -> None:
    """The retried put finds the lock it took itself: the session is ours, not busy."""
    proxy.on("PutItem", hold=HOLD)

    held = behind.acquire(key, lease=30, wait=0)

    assert proxy.count("PutItem") == 2
    with pytest.raises(SessionBusy):
        behind.acquire(key, lease=30, wait=0)
    held.release()
    behind.acquire(key, lease=30, wait=0).release()


def test_a_commit_that_loses_a_race_is_a_version_conflict(
    behind: DynamoDBStore, direct: DynamoDBStore, proxy: DynamoProxy, key: SessionKey
) -> None:
    """Another commit lands between this one's read of the version and its transaction: moto
    cancels it with ``ConditionalCheckFailed`` on the meta item, and nothing of it is written."""
    behind.commit(key, expected_version=0, append=msgs("base"))
    proxy.on("TransactWriteItems", before=lambda: direct.commit(key, expected_version=1, append=msgs("first")))

    with pytest.raises(VersionConflict):
        behind.commit(key, expected_version=1, append=msgs("second"), run_id="late")

    assert [m.content for m in behind.history(key)] == ["base", "first"]
    assert behind.committed(key, "late") is None


def test_an_unconditional_commit_that_loses_a_race_goes_after_it(
    behind: DynamoDBStore, direct: DynamoDBStore, proxy: DynamoProxy, key: SessionKey
) -> None:
    behind.commit(key, expected_version=0, append=msgs("base"))
    proxy.on("TransactWriteItems", before=lambda: direct.commit(key, expected_version=1, append=msgs("first")))

    assert behind.commit(key, expected_version=None, append=msgs("second")).version == 3

    assert [m.content for m in behind.history(key)] == ["base", "first", "second"]


def test_a_commit_whose_run_is_revoked_meanwhile_is_refused(
    behind: DynamoDBStore, direct: DynamoDBStore, proxy: DynamoProxy, key: SessionKey
) -> None:
    """The revoke lands between the read and the transaction: ``ConditionalCheckFailed`` on the
    mark's check."""
    proxy.on("TransactWriteItems", before=lambda: direct.revoke(key, "r1"))

    with pytest.raises(RunRevoked):
        behind.commit(key, expected_version=0, append=msgs("q", "a"), run_id="r1")

    assert behind.load(key).version == 0


def test_a_commit_cancelled_by_a_concurrent_transaction_is_sent_again(
    behind: DynamoDBStore, proxy: DynamoProxy, key: SessionKey
) -> None:
    proxy.on("TransactWriteItems", answer=cancelled("TransactionConflict", "None"))

    assert behind.commit(key, expected_version=0, append=msgs("q")).version == 1

    assert proxy.count("TransactWriteItems") == 2
    assert [m.content for m in behind.history(key)] == ["q"]


def test_a_retry_that_meets_its_first_attempt_in_progress_is_sent_again(
    behind: DynamoDBStore, proxy: DynamoProxy, key: SessionKey
) -> None:
    error = {"__type": "com.amazonaws.dynamodb.v20120810#TransactionInProgressException", "message": "in progress"}
    proxy.on("TransactWriteItems", answer=(400, error))

    assert behind.commit(key, expected_version=0, append=msgs("q")).version == 1
    assert [m.content for m in behind.history(key)] == ["q"]


@pytest.mark.parametrize("reason", ["TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"])
def test_a_commit_that_stays_throttled_is_unavailable(
    behind: DynamoDBStore, proxy: DynamoProxy, key: SessionKey, monkeypatch: pytest.MonkeyPatch, reason: str
) -> None:
    monkeypatch.setattr(commits, "TRANSIENT_PATIENCE", 0.3)
    proxy.on("TransactWriteItems", times=float("inf"), answer=cancelled(reason, "None"))

    with pytest.raises(StoreUnavailable) as raised:
        behind.commit(key, expected_version=0, append=msgs("q"))

    assert reason in str(raised.value)
    assert proxy.count("TransactWriteItems") > 1  # tried again before giving up


@pytest.mark.parametrize(
    ("codes", "message", "error"),
    [
        (("None", "ValidationError"), "Item size has exceeded the maximum allowed size", PayloadTooLarge),
        (("None", "ItemCollectionSizeLimitExceeded"), "Collection size exceeded.", PayloadTooLarge),
        (("None", "ValidationError"), "The provided expression refers to an attribute that does not exist", StoreError),
        (("InternalServerError", "None"), "", StoreUnavailable),
    ],
)
def test_other_cancellations_are_never_conflicts(
    behind: DynamoDBStore,
    proxy: DynamoProxy,
    key: SessionKey,
    codes: tuple[str, ...],
    message: str,
    error: type[StoreError],
) -> None:
    proxy.on("TransactWriteItems", answer=cancelled(*codes, message=message))

    with pytest.raises(StoreError) as raised:
        behind.commit(key, expected_version=0, append=msgs("q"))

    assert type(raised.value) is error
    assert not isinstance(raised.value, VersionConflict)
    assert proxy.count("TransactWriteItems") == 1
    assert behind.load(key).version == 0
