"""Removing a session's items: on ``delete``, and before a commit writes again to a session that
expired (DynamoDB's TTL takes only ``meta`` and ``lock``, lazily: messages and state carry no TTL,
so what is left of an expired session must not show through the new one)."""

from __future__ import annotations

from sessions_app.stores.base import SessionKey, StoreUnavailable, backoff_delays, wait_or_raise
from sessions_app.stores.dynamodb.client import Table
from sessions_app.stores.dynamodb.schema import item_key, s

#: How long a purge keeps sending deletes that DynamoDB left unprocessed.
PURGE_PATIENCE = 30.0


def purge(table: Table, key: SessionKey, *, partition: str = "") -> int:
    """Delete every item of the session but its lock (or of its partition ``#<partition>``).
    Returns how many were deleted."""
    pk = item_key(key, "", partition=partition)["pk"]
    items = table.query(
        KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": pk}, ProjectionExpression="sk"
    )
    keys = [item["sk"]["S"] for item in items if item["sk"]["S"] != "lock"]
    for start in range(0, len(keys), 25):
        requests = [{"DeleteRequest": {"Key": {"pk": pk, "sk": s(sk)}}} for sk in keys[start : start + 25]]
        delays = backoff_delays(PURGE_PATIENCE, first=0.01, cap=0.5)
        while requests:
            reply = table.call("batch_write_item", RequestItems={table.name: requests})
            requests = reply.get("UnprocessedItems", {}).get(table.name, [])
            if requests:
                wait_or_raise(delays, StoreUnavailable("dynamodb: deletes stayed unprocessed"))
    return len(keys)


def purged_if_stale(table: Table, key: SessionKey, meta: dict | None, *, live: bool) -> dict | None:
    """The meta item a commit builds on: ``meta``, or None once an expired session, or what
    DynamoDB's TTL left of one, is purged."""
    if meta is not None and not live:
        purge(table, key)
        return None
    if meta is None:  # any item past the lock is what TTL left behind
        reply = table.call(
            "query",
            KeyConditionExpression="pk = :pk AND sk > :lock",
            ExpressionAttributeValues={":pk": item_key(key, "")["pk"], ":lock": s("lock")},
            ProjectionExpression="sk",
            Limit=1,
        )
        if reply.get("Items"):
            purge(table, key)
    return meta
