"""The table: its creation, and the keys and attributes of its items.

One table, partition key ``pk`` = ``<tenant>#<session>``, sort key ``sk``::

    meta                     v (version), n (messages), c (map: count per role), t (the last commit's
                             id), deadline, expires_at
    m#<seq, 12 digits>       d: one message as JSON (never rewritten; sealed when encryption is
                             on, as every "d"); the first of a commit: t too
    s#<scope>#<key>          d: one state value as JSON
    x#run#<run id>           seq: number of the first message that run committed
    lock                     token, until (lease end), expires_at

``lock`` < ``m#…`` < ``meta`` < ``s#…`` < ``x#…`` in key order. A revoked run is marked in a
partition of its own, ``<tenant>#<session>#revoked``, sort key the run id, and event logs live in
``<tenant>#<session>#events`` (``events``), so that neither a load's range nor the purge of an
expired session meets them.

Expiry: ``meta`` and ``lock`` carry ``expires_at`` (epoch seconds), the table's TTL attribute, and
every read honours ``deadline`` itself because DynamoDB deletes expired items lazily (up to days
later). Message and state items carry no TTL, so that a commit never has to touch old items.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from sessions_app.stores.base import SessionKey


def n(value: float) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def s(value: str) -> dict[str, str]:
    return {"S": value}


def item_key(key: SessionKey, sk: str, *, partition: str = "") -> dict[str, dict[str, str]]:
    """The key of item ``sk`` of the session's partition (or of its ``#<partition>``)."""
    return {"pk": s(f"{key.tenant}#{key.session_id}" + (f"#{partition}" if partition else "")), "sk": s(sk)}


def seq(number: int) -> str:
    """The sort key of message ``number``."""
    return f"m#{number:012d}"


def escaped(name: str) -> str:
    """``name`` with ``#`` and ``%`` escaped, followed by ``#``: no two names share a prefix."""
    return name.replace("%", "%25").replace("#", "%23") + "#"


def commit_of(item: dict[str, Any] | None) -> str | None:
    """The commit (or append) id an item carries (``t``), if any."""
    return None if item is None else item.get("t", {}).get("S")


def live(meta: dict[str, Any] | None, now: float) -> bool:
    """Whether a meta item is there and its deadline, if any, not passed."""
    return meta is not None and ("deadline" not in meta or float(meta["deadline"]["N"]) > now)


def parse_meta(meta: dict[str, Any] | None) -> tuple[int, int, dict[str, int]]:
    """(version, number of messages, count per role) of a meta item; zeros for none."""
    if meta is None:
        return 0, 0, {}
    counts = {role: int(v["N"]) for role, v in meta.get("c", {}).get("M", {}).items()}
    return int(meta["v"]["N"]), int(meta["n"]["N"]), counts


def create_table(client: Any, table_name: str) -> None:
    """Create the table (on-demand billing) if it is missing, wait for it, switch its TTL on.
    Raises botocore's errors (the caller translates them)."""
    try:
        client.create_table(
            TableName=table_name,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    ttl = client.describe_time_to_live(TableName=table_name)
    if ttl.get("TimeToLiveDescription", {}).get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        return
    try:
        client.update_time_to_live(
            TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )
    except ClientError as exc:  # another process switched it on first
        if "already enabled" not in str(exc).lower():
            raise
