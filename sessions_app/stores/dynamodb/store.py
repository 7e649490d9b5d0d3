"""The DynamoDB store: reads here, writes in ``commits``."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from sessions_app.stores.base import (
    SHARED_SCOPE,
    CommitResult,
    Message,
    SessionKey,
    SessionStore,
    Snapshot,
)
from sessions_app.stores.dynamodb import commits
from sessions_app.stores.dynamodb.client import Table
from sessions_app.stores.dynamodb.events import DynamoEventLog
from sessions_app.stores.dynamodb.lock import DynamoLock
from sessions_app.stores.dynamodb.purge import purge
from sessions_app.stores.dynamodb.reseal import reseal
from sessions_app.stores.dynamodb.schema import escaped, item_key, live, parse_meta, s, seq
from sessions_app.stores.sealing import PLAIN, Sealer


class DynamoDBStore(SessionStore, DynamoEventLog):
    name = "dynamodb"
    lock_class = DynamoLock

    def __init__(
        self,
        *,
        ttl: float = 0,
        events_ttl: float = 3600,
        table_name: str = "agent-kernel-sessions",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        create_table: bool = True,
        read_timeout: float = 5.0,
        sealer: Sealer = PLAIN,
    ) -> None:
        SessionStore.__init__(self, ttl=ttl)
        table = Table(
            name=table_name, endpoint_url=endpoint_url, region=region, create=create_table, read_timeout=read_timeout
        )
        DynamoEventLog.__init__(self, table=table, events_ttl=events_ttl, sealer=sealer)
        self.table_name = table_name

    @property
    def client(self) -> Any:
        return self.table.client

    def load(self, key: SessionKey, *, scopes: Sequence[str] = (SHARED_SCOPE,), window: int = 50) -> Snapshot:
        """Two round trips: the meta item, then one query of ``m#<offset>`` to ``s$`` (the window,
        the meta item again, which is the truth, and the state items)."""
        now = time.time()
        meta = self.table.get(item_key(key, "meta"))
        empty = Snapshot(0, [], 0, 0, {}, {scope: {} for scope in scopes})
        if not live(meta, now):
            return empty
        start = max(0, parse_meta(meta)[1] - window)
        prefixes = {"s#" + escaped(scope): scope for scope in scopes}
        items = list(
            self.table.query(
                KeyConditionExpression="pk = :pk AND sk BETWEEN :from AND :to",
                ExpressionAttributeValues={":pk": item_key(key, "")["pk"], ":from": s(seq(start)), ":to": s("s$")},
            )
        )
        fresh = next((item for item in items if item["sk"]["S"] == "meta"), None)
        if not live(fresh, now):  # deleted or expired between the two reads
            return empty
        version, total, counts = parse_meta(fresh)
        offset = max(start, total - window) if window else total
        messages: list[Message] = []
        state: dict[str, dict[str, Any]] = {scope: {} for scope in scopes}
        for item in items:
            sk = item["sk"]["S"]
            if sk.startswith("m#"):
                if offset <= int(sk[2:]) < total:
                    messages.append(self.sealer.open_message(key, item["d"]["S"]))
            elif sk.startswith("s#"):
                cut = sk.index("#", 2) + 1  # escaped scopes hold no "#": the prefix ends at the second
                scope = prefixes.get(sk[:cut])
                if scope is not None:
                    state[scope][sk[cut:]] = self.sealer.open_value(key, item["d"]["S"])
        return Snapshot(version, messages, offset, total, counts, state)

    def history(self, key: SessionKey, *, start: int = 0, limit: int = 100) -> list[Message]:
        if start < 0 or limit <= 0:
            return []
        meta = self.table.get(item_key(key, "meta"))
        if not live(meta, time.time()):
            return []
        end = min(parse_meta(meta)[1], start + limit) - 1
        if end < start:
            return []
        items = self.table.query(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :a AND :b",
            ExpressionAttributeValues={":pk": item_key(key, "")["pk"], ":a": s(seq(start)), ":b": s(seq(end))},
        )
        return [self.sealer.open_message(key, item["d"]["S"]) for item in items]

    def commit(
        self,
        key: SessionKey,
        *,
        expected_version: int | None,
        append: Sequence[Message] = (),
        state: Mapping[str, Mapping[str, Any]] | None = None,
        run_id: str | None = None,
    ) -> CommitResult:
        return commits.commit(self.table, key, self.ttl, expected_version, append, state or {}, run_id, self.sealer)

    def reseal(self, key: SessionKey) -> int:
        return reseal(self.table, self.sealer, key)

    def committed(self, key: SessionKey, run_id: str) -> int | None:
        return commits.meta_and_run(self.table, key, run_id)[1]

    def revoke(self, key: SessionKey, run_id: str) -> bool:
        return commits.revoke(self.table, key, run_id, ttl=self.ttl)

    def delete(self, key: SessionKey) -> bool:
        meta = self.table.get(item_key(key, "meta"))
        deleted = purge(self.table, key)
        purge(self.table, key, partition="revoked")
        self.delete_logs(key)
        return deleted > 0 and live(meta, time.time())

    def ping(self) -> None:
        self.table.call("describe_table")

    def ensure_schema(self) -> None:
        self.table.ensure()

    def close(self) -> None:
        self.table.close()
