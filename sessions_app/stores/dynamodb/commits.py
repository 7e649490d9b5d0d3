"""Commits, revokes and their recovery.

A commit is one ``TransactWriteItems``: the new messages and state items plus the meta item,
conditioned on the version read just before, so its cost does not grow with the history.

A transaction whose answer never came may have applied all the same, and botocore sends it again.
So every commit writes its id, ``t``, and a commit cancelled by its version condition reads it
back: its own id means it applied; the version it read, still there, means nothing applied and it
is sent again; anything else is a ``VersionConflict``.

``revoke`` and a commit that records a run each check, in one transaction, that the other's item
(the mark in the ``#revoked`` partition, ``x#run#<run id>``) is absent: exactly one of them wins.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sessions_app.stores.base import (
    DELETE,
    CommitResult,
    Message,
    PayloadTooLarge,
    RunRevoked,
    SessionKey,
    StoreError,
    StoreUnavailable,
    VersionConflict,
    backoff_delays,
    dumps,
    wait_or_raise,
)
from sessions_app.stores.dynamodb.client import (
    MAX_ACTIONS,
    MAX_ITEM_BYTES,
    MAX_TRANSACTION_BYTES,
    Table,
    TransactionCancelled,
    Transient,
    cancellation_error,
)
from sessions_app.stores.dynamodb.purge import purged_if_stale
from sessions_app.stores.dynamodb.schema import commit_of, escaped, item_key, live, n, parse_meta, s, seq
from sessions_app.stores.sealing import Sealer

#: How long an unconditional commit (or a revoke) keeps retrying against concurrent writers.
UNCONDITIONAL_PATIENCE = 30.0
#: How long a commit keeps retrying a transaction that a concurrent one or throttling cancelled.
TRANSIENT_PATIENCE = 10.0


def commit(
    table: Table,
    key: SessionKey,
    ttl: float,
    expected_version: int | None,
    append: Sequence[Message],
    state: Mapping[str, Mapping[str, Any]],
    run_id: str | None,
    sealer: Sealer,
) -> CommitResult:
    """``SessionStore.commit``: checked against the limits of one transaction, then sent until it
    applies, conflicts, or its patience is spent. ``sealer`` seals each message and value."""
    writes = state_writes(table, key, state, sealer)
    bodies = [sealer.seal_text(key, m.to_json()) for m in append]
    for body in bodies:
        if len(body.encode()) > MAX_ITEM_BYTES:
            raise PayloadTooLarge(f"a message of {len(body.encode())} bytes exceeds {MAX_ITEM_BYTES}")
    if len(bodies) + len(writes) + 1 + 2 * (run_id is not None) > MAX_ACTIONS:
        raise PayloadTooLarge(
            f"one commit holds at most {MAX_ACTIONS - 1} messages and state keys, not {len(bodies) + len(writes)}"
        )
    size = sum(len(b.encode()) for b in bodies) + sum(len(str(w)) for w in writes)
    if size > MAX_TRANSACTION_BYTES:
        raise PayloadTooLarge(f"one commit holds at most {MAX_TRANSACTION_BYTES} bytes, not {size}")

    attempt = _Attempt(table, key, ttl, append, bodies, writes, run_id)
    conflicts = backoff_delays(UNCONDITIONAL_PATIENCE, first=0.005, cap=0.2)
    transients = backoff_delays(TRANSIENT_PATIENCE, first=0.02, cap=0.5)
    while True:
        try:
            return attempt.send(expected_version)
        except Transient as exc:
            failed = StoreUnavailable(f"dynamodb: the commit to {key.session_id} kept failing: {exc}")
            wait_or_raise(transients, failed)
        except VersionConflict as exc:
            wait_or_raise(conflicts if expected_version is None else iter(()), exc)


def state_writes(
    table: Table, key: SessionKey, state: Mapping[str, Mapping[str, Any]], sealer: Sealer
) -> list[dict[str, Any]]:
    """One put or delete per state key, each value checked against the size of an item."""
    writes: list[dict[str, Any]] = []
    for scope, values in state.items():
        for name, value in values.items():
            at = item_key(key, "s#" + escaped(scope) + name)
            if value is DELETE:
                writes.append(table.delete(at))
                continue
            body = sealer.seal_text(key, dumps(value))
            if len(body.encode()) > MAX_ITEM_BYTES:
                raise PayloadTooLarge(
                    f"state value {scope}/{name} is {len(body.encode())} bytes; one value holds at most "
                    f"{MAX_ITEM_BYTES}: split it over several keys"
                )
            writes.append(table.put({**at, "d": s(body)}))
    return writes


@dataclass
class _Attempt:
    """The attempts of one commit: every one writes the same id, ``t``, so that one whose answer
    was lost is recognised by it; ``version``, ``total`` and ``result`` are the last one's."""

    table: Table
    key: SessionKey
    ttl: float
    append: Sequence[Message]
    bodies: list[str]
    writes: list[dict[str, Any]]
    run_id: str | None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    version: int = -1  # none yet
    total: int = 0
    result: CommitResult = field(default_factory=lambda: CommitResult(0, 0, {}))

    def send(self, expected_version: int | None) -> CommitResult:
        key, table = self.key, self.table
        now = time.time()
        meta = table.get(item_key(key, "meta"))
        if self.version >= 0 and parse_meta(meta)[0] != self.version and self.landed():
            return self.result  # moved since our last attempt: by it
        meta = purged_if_stale(table, key, meta, live=live(meta, now))
        version, total, counts = parse_meta(meta)
        if expected_version is not None and expected_version != version:
            raise VersionConflict(f"{key.session_id}: expected version {expected_version}, found {version}")

        for message in self.append:
            counts[message.counted_as] = counts.get(message.counted_as, 0) + 1
        new_meta: dict[str, Any] = {
            **item_key(key, "meta"),
            "v": n(version + 1),
            "n": n(total + len(self.append)),
            "c": {"M": {role: n(count) for role, count in counts.items()}},
            "t": s(self.id),
        }
        if self.ttl > 0:
            new_meta["deadline"] = n(now + self.ttl)
            new_meta["expires_at"] = n(math.ceil(now + self.ttl))
        if meta is None:
            actions = [table.put(new_meta, ConditionExpression="attribute_not_exists(pk)")]
        else:
            condition = {"ConditionExpression": "v = :v", "ExpressionAttributeValues": {":v": n(version)}}
            actions = [table.put(new_meta, **condition)]
        for i, body in enumerate(self.bodies):
            first = {"t": s(self.id)} if i == 0 else {}
            actions.append(table.put({**item_key(key, seq(total + i)), "d": s(body), **first}))
        actions += self.writes
        if self.run_id is not None:
            actions.append(table.put({**item_key(key, "x#run#" + self.run_id), "seq": n(total)}))
            actions.append(table.absent(mark(key, self.run_id)))
        self.version, self.total = version, total
        self.result = CommitResult(version + 1, total + len(self.append), counts)
        try:
            table.write_together(actions)
        except TransactionCancelled as exc:
            if self.run_id is not None and exc.reasons[-1:] == ["ConditionalCheckFailed"]:
                raise RunRevoked(f"run {self.run_id} was revoked") from None  # the mark exists: nothing applied
            if exc.reasons[:1] != ["ConditionalCheckFailed"]:
                raise cancellation_error(exc, f"the commit to {key.session_id}") from None
            # The version condition: another commit, or an attempt of ours whose answer was lost.
            self.conclude(self.landed(), None)
        except Transient:
            raise
        except StoreUnavailable as exc:
            # botocore gave up, yet an attempt may have applied: then it succeeded; the version
            # unmoved, sending it again is safe (at most one attempt per version applies).
            try:
                landed = self.landed()
            except Transient:
                raise
            except StoreError:
                raise exc from None
            self.conclude(landed, exc)
        return self.result

    def conclude(self, landed: bool | None, cause: Exception | None) -> None:
        """Return if the attempt applied; ``Transient`` if nothing did; else ``VersionConflict``."""
        if landed:
            return
        if landed is None:
            text = f"the commit to {self.key.session_id} was cancelled at version {self.version}, which did not move"
            raise Transient(str(cause) if cause else f"dynamodb: {text}") from cause
        raise VersionConflict(
            f"{self.key.session_id}: expected version {self.version}, another commit came first"
        ) from cause

    def landed(self) -> bool | None:
        """Whether this commit, made on ``version`` with its first message numbered ``total``, is
        stored: True; False, another commit took its place; None, the session is still at
        ``version`` (nothing applied). One consistent read of the meta item and that message."""
        sks = ["meta", seq(self.total)] if self.bodies else ["meta"]
        try:
            meta, first = [*self.table.get_together([item_key(self.key, sk) for sk in sks]), None][:2]
        except TransactionCancelled as exc:  # a write transaction on these items was under way
            raise Transient(f"dynamodb: could not read back the commit to {self.key.session_id}: {exc}") from None
        if commit_of(meta) == self.id:
            return True
        stored = parse_meta(meta)[0]
        if stored > self.version + 1 and commit_of(first) == self.id:  # later commits followed it
            return True
        return None if stored == self.version else False


def mark(key: SessionKey, run_id: str) -> dict[str, dict[str, str]]:
    """The key of run ``run_id``'s revoke mark."""
    return item_key(key, run_id, partition="revoked")


def revoke(table: Table, key: SessionKey, run_id: str, *, ttl: float) -> bool:
    """``SessionStore.revoke``: one transaction, the mark put if the run's record is absent."""
    # The mark outlives any run that could still try to commit, and goes with DynamoDB's TTL.
    expires = n(math.ceil(time.time() + max(ttl, 7 * 86400)))
    actions = [table.absent(item_key(key, "x#run#" + run_id)), table.put({**mark(key, run_id), "expires_at": expires})]
    delays = backoff_delays(UNCONDITIONAL_PATIENCE, first=0.005, cap=0.2)
    while True:
        try:
            table.write_together(actions)
            return True
        except TransactionCancelled as exc:
            if exc.reasons[:1] == ["ConditionalCheckFailed"]:
                return False  # it committed
            wait_or_raise(delays, StoreUnavailable(f"dynamodb: could not revoke run {run_id}: {exc}"))


def meta_and_run(table: Table, key: SessionKey, run_id: str) -> tuple[dict[str, Any] | None, int | None]:
    """The meta item and what ``committed`` says of the run, in one consistent read."""
    delays = backoff_delays(TRANSIENT_PATIENCE, first=0.02, cap=0.5)
    while True:
        now = time.time()
        try:
            meta, run = table.get_together([item_key(key, "meta"), item_key(key, "x#run#" + run_id)])
            return meta, (int(run["seq"]["N"]) if run is not None and live(meta, now) else None)
        except TransactionCancelled as exc:  # a write transaction on these items (a revoke, a commit)
            wait_or_raise(delays, StoreUnavailable(f"dynamodb: could not read session {key.session_id}: {exc}"))
