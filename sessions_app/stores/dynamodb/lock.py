"""The per-session lock: item ``lock`` of the session's partition, holding its holder's token and
the end of its lease (``until``). Taking and renewing it are conditional puts, releasing it a
conditional delete; a holder whose lease lapsed never touches its successor's."""

from __future__ import annotations

import math
import time
from contextlib import suppress
from typing import Any

from sessions_app.stores.base import Lock, LockLost, SessionKey
from sessions_app.stores.dynamodb.client import ConditionFailed, Table
from sessions_app.stores.dynamodb.schema import item_key, n, s


class DynamoLock(Lock):
    def __init__(self, store: Any, key: SessionKey, lease: float) -> None:
        super().__init__(store, key, lease)
        self.table: Table = store.table
        self.item = item_key(key, "lock")

    def _put(self, condition: str) -> bool:
        """Put this holder's lease if ``condition`` holds; whether it did."""
        now = time.time()
        until = now + self.lease
        lease = {"token": s(self.token), "until": n(until), "expires_at": n(math.ceil(until) + 60)}
        try:
            self.table.call(
                "put_item",
                Item={**self.item, **lease},
                ConditionExpression=condition,
                ExpressionAttributeNames={"#u": "until", "#t": "token"},
                ExpressionAttributeValues={":now": n(now), ":token": s(self.token)},
            )
        except ConditionFailed:
            return False
        return True

    def take(self) -> bool:
        return self._put("attribute_not_exists(pk) OR #u <= :now OR #t = :token")

    def renew(self) -> None:
        if not self._put("#t = :token AND #u > :now"):
            raise LockLost(f"lock on {self.key.session_id} was lost")

    def release(self) -> None:
        with suppress(ConditionFailed):
            self.table.call(
                "delete_item",
                Key=self.item,
                ConditionExpression="#t = :token",
                ExpressionAttributeNames={"#t": "token"},
                ExpressionAttributeValues={":token": s(self.token)},
            )
