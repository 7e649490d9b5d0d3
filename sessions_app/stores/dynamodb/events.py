"""Event logs on DynamoDB, in the session's partition ``<tenant>#<session>#events``, sort key
prefixed by the run id (``#`` and ``%`` escaped)::

    <run>#e#<id, 12 digits>  k (kind), d (JSON data), g (the log's generation), expires_at
    <run>#h                  head: n (last id), g (generation), t (last append's id), deadline, expires_at

An append is one ``TransactWriteItems`` of the events and the head, conditioned on the head read
before (remembered from this store's own last append): concurrent appends cannot take the same
ids. A head whose deadline passed starts a new generation at id 1 (``g`` tells old items apart).
``t`` recognises an append whose answer was lost. A read is one ``Query`` up to the head and
returns only what the head covers, consecutive from ``after``. Event items expire a day after
their head, so that DynamoDB's TTL never takes one from a log still written to.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from sessions_app.stores.base import PayloadTooLarge, SessionKey, StoreUnavailable, backoff_delays, wait_or_raise
from sessions_app.stores.dynamodb.client import (
    MAX_ITEM_BYTES,
    MAX_TRANSACTION_BYTES,
    TRANSIENT_REASONS,
    Table,
    TransactionCancelled,
    cancellation_error,
)
from sessions_app.stores.dynamodb.purge import purge
from sessions_app.stores.dynamodb.schema import commit_of, escaped, item_key, n, s
from sessions_app.stores.events import Event, EventLog, check_run_id, encode_events
from sessions_app.stores.sealing import PLAIN, Sealer

#: How much longer than its log's deadline an event item is kept (DynamoDB's TTL takes it then).
EVENT_ITEM_SLACK = 86400
#: Event logs whose head a store remembers from its own appends.
HEADS_CACHED = 4096
#: How long an append keeps retrying after losing races to other appenders.
APPEND_PATIENCE = 30.0

#: A head as (n, g, deadline or 0).
Head = tuple[int, str, float]


def _head(item: dict[str, Any] | None) -> Head | None:
    if item is None:
        return None
    return int(item["n"]["N"]), item["g"]["S"], float(item["deadline"]["N"]) if "deadline" in item else 0.0


def _current(head: Head | None, now: float) -> bool:
    return head is not None and (not head[2] or head[2] > now)


class DynamoEventLog(EventLog):
    """Event logs in ``table``."""

    def __init__(self, *, table: Table, events_ttl: float = 3600, sealer: Sealer = PLAIN) -> None:
        super().__init__(events_ttl=events_ttl)
        self.table = table
        self.sealer = sealer
        # (session key, run id) -> the head as this store's last append left it.
        self._heads: OrderedDict[tuple[SessionKey, str], Head] = OrderedDict()
        self._heads_lock = threading.Lock()

    def _key(self, key: SessionKey, run_id: str, sk: str) -> dict[str, dict[str, str]]:
        return item_key(key, escaped(run_id) + sk, partition="events")

    def _read_head(self, key: SessionKey, run_id: str) -> dict[str, Any] | None:
        return self.table.get(self._key(key, run_id, "h"))

    def append_events(self, key: SessionKey, run_id: str, events: Sequence[tuple[str, dict[str, Any]]]) -> int:
        check_run_id(run_id)
        rows = [(kind, self.sealer.seal_text(key, body)) for kind, body in encode_events(events)]
        sizes = [len(body.encode()) + len(kind) for kind, body in rows]
        if any(size > MAX_ITEM_BYTES for size in sizes):
            raise PayloadTooLarge(f"an event of {max(sizes)} bytes exceeds {MAX_ITEM_BYTES}")
        if sum(sizes) > MAX_TRANSACTION_BYTES:
            raise PayloadTooLarge(f"one append holds at most {MAX_TRANSACTION_BYTES} bytes, not {sum(sizes)}")
        if not rows:
            head = _head(self._read_head(key, run_id))
            return head[0] if head is not None and _current(head, time.time()) else 0

        with self._heads_lock:
            head = self._heads.get((key, run_id))
        remembered = head is not None
        if not remembered:
            head = _head(self._read_head(key, run_id))
        append_id = uuid.uuid4().hex  # on the head: an attempt whose answer was lost is recognised by it
        delays = backoff_delays(APPEND_PATIENCE, first=0.005, cap=0.2)
        while True:
            try:
                return self._append_once(key, run_id, head, rows, append_id)
            except TransactionCancelled as exc:
                with self._heads_lock:
                    self._heads.pop((key, run_id), None)
                if not set(exc.reasons) <= {"None", "ConditionalCheckFailed", *TRANSIENT_REASONS}:
                    raise cancellation_error(exc, f"the append to the event log of run {run_id}") from None
                item = self._read_head(key, run_id)
                head = _head(item)
                if head is not None and commit_of(item) == append_id:  # it applied: botocore's retry was cancelled
                    self._remember(key, run_id, head)
                    return head[0]
                if not remembered:  # lost a race to another appender (a stale memory retries at once)
                    wait_or_raise(delays, StoreUnavailable(f"dynamodb: could not append to the log of run {run_id}"))
                remembered = False

    def _append_once(
        self, key: SessionKey, run_id: str, head: Head | None, rows: list[tuple[str, str]], append_id: str
    ) -> int:
        now = time.time()
        if head is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "#n = :n AND #g = :g",
                "ExpressionAttributeNames": {"#n": "n", "#g": "g"},
                "ExpressionAttributeValues": {":n": n(head[0]), ":g": s(head[1])},
            }
        if head is not None and _current(head, now):
            last, generation = head[0], head[1]
        else:  # no log, or an expired one: a new generation starts at 1
            last, generation = 0, uuid.uuid4().hex[:12]
        total = last + len(rows)
        head_item = {**self._key(key, run_id, "h"), "n": n(total), "g": s(generation), "t": s(append_id)}
        extra: dict[str, Any] = {"g": s(generation)}
        deadline = 0.0
        if self.events_ttl > 0:
            deadline = now + self.events_ttl
            head_item.update(deadline=n(deadline), expires_at=n(math.ceil(deadline)))
            extra["expires_at"] = n(math.ceil(deadline) + EVENT_ITEM_SLACK)
        actions = [
            self.table.put({**self._key(key, run_id, f"e#{number:012d}"), "k": s(kind), "d": s(body), **extra})
            for number, (kind, body) in enumerate(rows, start=last + 1)
        ]
        # The head last: moto, which applies actions one by one, never shows it before its events.
        self.table.write_together([*actions, self.table.put(head_item, **condition)])
        self._remember(key, run_id, (total, generation, deadline))
        return total

    def _remember(self, key: SessionKey, run_id: str, head: Head) -> None:
        with self._heads_lock:
            self._heads[(key, run_id)] = head
            self._heads.move_to_end((key, run_id))
            if len(self._heads) > HEADS_CACHED:
                self._heads.popitem(last=False)

    def read_events(self, key: SessionKey, run_id: str, *, after: int = 0, limit: int = 1000) -> list[Event]:
        check_run_id(run_id)
        if limit <= 0:
            return []
        after = max(after, 0)
        first, head_key = self._key(key, run_id, f"e#{after + 1:012d}"), self._key(key, run_id, "h")
        page = self.table.call(
            "query",
            ConsistentRead=True,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :from AND :to",
            ExpressionAttributeValues={":pk": first["pk"], ":from": first["sk"], ":to": head_key["sk"]},
            Limit=limit + 1,
        )
        items = page.get("Items", [])
        if items and items[-1]["sk"] == head_key["sk"]:
            head = _head(items.pop())
        elif "LastEvaluatedKey" in page:
            head = _head(self._read_head(key, run_id))
        else:  # the whole range up to the head was read: there is none
            return []
        if head is None or not _current(head, time.time()):
            return []
        last, generation, _ = head
        events: list[Event] = []
        for item in items:
            number = int(item["sk"]["S"][-12:])
            if number != after + len(events) + 1 or number > last or item["g"]["S"] != generation:
                break  # not yet visible, or left by an older generation
            events.append(Event(number, item["k"]["S"], self.sealer.open_value(key, item["d"]["S"])))
            if len(events) == limit:
                break
        return events

    def delete_logs(self, key: SessionKey) -> None:
        purge(self.table, key, partition="events")
        with self._heads_lock:
            for held in [held for held in self._heads if held[0] == key]:
                del self._heads[held]
