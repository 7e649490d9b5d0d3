"""``DynamoDBStore.reseal``: a session's message and state items (``m#…``, ``s#…``) encrypted
again under the first key, each an ``UpdateItem`` conditioned on ``d`` being what was read, so a
commit or a delete meanwhile is never overwritten."""

from __future__ import annotations

from sessions_app.stores.base import SessionKey
from sessions_app.stores.dynamodb.client import ConditionFailed, Table
from sessions_app.stores.dynamodb.schema import item_key, s
from sessions_app.stores.sealing import Sealer


def reseal(table: Table, sealer: Sealer, key: SessionKey) -> int:
    count = 0
    items = table.query(
        KeyConditionExpression="pk = :pk AND sk BETWEEN :m AND :s",
        ExpressionAttributeValues={":pk": item_key(key, "")["pk"], ":m": s("m#"), ":s": s("s$")},
        ProjectionExpression="sk, d",
    )
    for item in items:
        stored = item.get("d", {}).get("S")
        sealed = None if stored is None else sealer.reseal(key, stored)
        if sealed is None:
            continue
        try:
            table.call(
                "update_item",
                Key=item_key(key, item["sk"]["S"]),
                UpdateExpression="SET d = :new",
                ConditionExpression="d = :old",
                ExpressionAttributeValues={":new": s(str(sealed)), ":old": s(stored)},
            )
            count += 1
        except ConditionFailed:  # rewritten or deleted meanwhile: what is there now is newer
            continue
    return count
