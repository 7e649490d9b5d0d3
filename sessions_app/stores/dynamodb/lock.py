"""The per-session lock: item ``lock`` of the session's partition, holding its holder's token and
the end of its lease (``until``). Taking it is a conditional put (no lock, a lapsed one, or our
own: botocore's retry of a put whose answer was lost); renewing and releasing are conditioned on
the token, so a holder whose lease lapsed never touches its successor's."""

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

    def take(self) -> bool:
        now = time.time()
        lease = {
            "token": s(self.token),
            "until": n(now + self.lease),
            "expires_at": n(math.ceil(now + self.lease) + 60),
        }
        try:
            self.table.call(
                "put_item",
                Item={**self.item, **lease},
                ConditionExpression="attribute_not_exists(pk) OR #u <= :now OR #t = :token",
                ExpressionAttributeNames={"#u": "until", "#t": "token"},
                ExpressionAttributeValues={":now": n(now), ":token": s(self.token)},
            )
        except ConditionFailed:
            return False
        return True

    def renew(self) -> None:
        now = time.time()
        try:
            self.table.call(
                "update_item",
                Key=self.item,
                UpdateExpression="SET #u = :until, expires_at = :exp",
                ConditionExpression="#t = :token AND #u > :now",
                ExpressionAttributeNames={"#t": "token", "#u": "until"},
                ExpressionAttributeValues={
                    ":token": s(self.token),
                    ":now": n(now),
                    ":until": n(now + self.lease),
                    ":exp": n(math.ceil(now + self.lease) + 60),
                },
            )
        except ConditionFailed as exc:
            raise LockLost(f"lock on {self.key.session_id} was lost") from exc

    def release(self) -> None:
        with suppress(ConditionFailed):
            self.table.call(
                "delete_item",
                Key=self.item,
                ConditionExpression="#t = :token",
                ExpressionAttributeNames={"#t": "token"},
                ExpressionAttributeValues={":token": s(self.token)},
            )
