"""DynamoDB store, through boto3's low-level client (thread-safe, one per store).

One table, partition key ``pk`` = ``<tenant>#<session>``, sort key ``sk``::

    meta                     v (version), n (messages), c (map: count per role), t (the last commit's
                             id), deadline, expires_at
    m#<seq, 12 digits>       d: one message as JSON (never rewritten); the first of a commit: t too
    s#<scope>#<key>          d: one state value as JSON
    x#run#<run id>           seq: number of the first message that run committed
    lock                     token, until (lease end), expires_at

A revoked run is marked in a partition of its own, ``<tenant>#<session>#revoked``, sort key the
run id, so that purging what an expired session left never takes a mark with it. ``revoke`` and
a commit that records a run are each one transaction over both the mark and ``x#run#<run id>``
(one checks that the other is absent): exactly one of them wins.

A commit is one ``TransactWriteItems``: the new messages and state items plus the meta item,
conditioned on the version read just before. It writes only what the run produced, so its cost
does not grow with the history, and no item ever holds the whole session: the 400 KB item limit
bounds one message or one state value, never a conversation.

A transaction whose answer never came (a read timeout, a 500) may have applied all the same, and
botocore sends it again: DynamoDB's ``ClientRequestToken`` makes that retry a no-op, but an
endpoint that ignores the token (moto) cancels it by the version condition the first attempt
already moved past. So every commit writes its id, ``t``, and a commit cancelled by its version
condition reads it back: its own id (on the meta item, or on its first message once later commits
followed) means it applied, and it succeeds; the version it read, still there, means nothing
applied, and it is sent again; anything else is a real ``VersionConflict``. A cancellation for
another reason is never a conflict: a concurrent transaction or throttling is retried for a while
(``StoreUnavailable`` after), an item too large is ``PayloadTooLarge``, anything else
``StoreUnavailable``. An event log's head carries its last append's id the same way.

Expiry: ``meta`` and ``lock`` carry ``expires_at`` (epoch seconds), the table's TTL attribute, and
every read honours ``deadline`` itself because DynamoDB deletes expired items lazily (up to days
later). Message and state items carry no TTL, so that a commit never has to touch old items; a
session found expired or orphaned is purged before it is written again, and ``delete`` removes
every item.

Event logs live in a partition of the session's own, ``<tenant>#<session>#events`` (so that
neither a load's range nor the purge of an expired session before a commit meets them, and
``delete`` takes all of a session's logs with one query), sort key prefixed by the run id (``#``
and ``%`` escaped)::

    <run>#e#<id, 12 digits>  k (kind), d (JSON data), g (the log's generation), expires_at
    <run>#h                  head: n (last id), g (generation), deadline, expires_at

An append is one ``TransactWriteItems``: the events' items and the head, conditioned on the head
read before (the same ``n`` and ``g``, or none): concurrent appends cannot take the same ids, and
the loser reads the head again and retries. The head is remembered from this store's own last
append to the log, so a process streaming a run appends in one round trip. A head whose deadline
passed starts a new generation at id 1: old items it has not overwritten yet are told apart by
``g``. A read is one ``Query`` from the first id wanted to the head (which sorts after the
events); it returns only what the head covers, consecutive from ``after`` (a query may see part of
a transaction), and nothing once the deadline passed. The head's ``expires_at`` is its deadline;
event items keep a day longer, so that DynamoDB's TTL never takes one from a log still written to.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from sessions_app.stores.base import (
    DELETE,
    SHARED_SCOPE,
    CommitResult,
    Event,
    Lock,
    LockLost,
    Message,
    PayloadTooLarge,
    RunRevoked,
    SessionBusy,
    SessionKey,
    SessionStore,
    Snapshot,
    StoreError,
    StoreUnavailable,
    VersionConflict,
    backoff_delays,
    check_run_id,
    dumps,
    encode_events,
    loads,
)

T = TypeVar("T")

#: Largest JSON payload of one item: DynamoDB's limit is 400 KB including names and keys.
MAX_ITEM_BYTES = 380_000
#: Largest transaction: 100 actions and 4 MB.
MAX_ACTIONS = 100
MAX_TRANSACTION_BYTES = 4_000_000
#: How long an unconditional commit keeps retrying against concurrent writers.
UNCONDITIONAL_PATIENCE = 30.0
#: How long a commit keeps retrying a transaction that a concurrent one or throttling cancelled.
TRANSIENT_PATIENCE = 10.0
#: How much longer than its log's deadline an event item is kept (DynamoDB's TTL takes it then).
EVENT_ITEM_SLACK = 86400
#: Event logs whose head a store remembers from its own appends.
HEADS_CACHED = 4096

_UNAVAILABLE = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "LimitExceededException",
}
#: Cancellation reasons of a transaction that applied nothing and may apply when sent again.
_TRANSIENT_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)


def _seq(number: int) -> str:
    return f"m#{number:012d}"


def _scope_prefix(scope: str) -> str:
    """``s#<scope>#`` with ``#`` and ``%`` escaped in the scope, so no two scopes share a prefix."""
    return "s#" + scope.replace("%", "%25").replace("#", "%23") + "#"


def _run_prefix(run_id: str) -> str:
    """``<run>#`` with ``#`` and ``%`` escaped in the run id, so no two runs share a prefix."""
    return run_id.replace("%", "%25").replace("#", "%23") + "#"


def _event_sk(prefix: str, number: int) -> str:
    return f"{prefix}e#{number:012d}"


def _n(value: float) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


class _ConditionFailed(StoreError):
    """Internal: a single-item conditional write did not apply."""


class _TransactionCancelled(StoreUnavailable):
    """Internal: a transaction did not apply; ``reasons`` holds each action's code (``"None"`` for
    an action that was fine), ``details`` each action's message, in order. Where a caller does not
    map it (``_cancellation_error``), the store is unavailable: never a conflict it cannot prove."""

    def __init__(self, message: str, reasons: list[str], details: list[str] | None = None) -> None:
        super().__init__(message)
        self.reasons = reasons
        self.details = details or [""] * len(reasons)


class _Transient(StoreUnavailable):
    """Internal: nothing applied, and sending it again may succeed (a concurrent transaction,
    throttling, our own earlier attempt still in progress)."""


def _cancellation_error(exc: _TransactionCancelled, what: str) -> StoreError:
    """The contract's error for a transaction cancelled by anything but a condition of ours."""
    codes = [code for code in exc.reasons if code not in ("None", "")]
    text = "; ".join(
        f"{code}: {detail}" if detail else code for code, detail in zip(exc.reasons, exc.details, strict=True)
    )
    if "ItemCollectionSizeLimitExceeded" in codes:
        return PayloadTooLarge(f"dynamodb: {what}: the session's items exceed their collection's size limit ({text})")
    for code, detail in zip(exc.reasons, exc.details, strict=True):
        if code == "ValidationError":
            if "size" in detail.lower():
                return PayloadTooLarge(f"dynamodb: {what}: {detail}")
            return StoreError(f"dynamodb: {what} was refused: {text}")
    if codes and set(codes) <= _TRANSIENT_REASONS:
        return _Transient(f"dynamodb: {what} was cancelled: {text}")
    return StoreUnavailable(f"dynamodb: {what} was cancelled: {text or exc}")


def _commit_of(item: dict[str, Any] | None) -> str | None:
    """The commit id an item carries (``t``), if any."""
    return None if item is None else item.get("t", {}).get("S")


class _DynamoLock(Lock):
    def __init__(self, store: DynamoDBStore, key: SessionKey, lease: float) -> None:
        super().__init__(key, lease)
        self._store = store

    def renew(self) -> None:
        now = time.time()
        try:
            self._store._call(
                self._store.client.update_item,
                TableName=self._store.table_name,
                Key=self._store._key(self.key, "lock"),
                UpdateExpression="SET #u = :until, expires_at = :exp",
                ConditionExpression="#t = :token AND #u > :now",
                ExpressionAttributeNames={"#t": "token", "#u": "until"},
                ExpressionAttributeValues={
                    ":token": _s(self.token),
                    ":now": _n(now),
                    ":until": _n(now + self.lease),
                    ":exp": _n(math.ceil(now + self.lease) + 60),
                },
            )
        except _ConditionFailed as exc:
            raise LockLost(f"lock on {self.key.session_id} was lost") from exc

    def release(self) -> None:
        # Conditioned on our token: once our lease lapsed another holder may have it; never release theirs.
        with suppress(_ConditionFailed):
            self._store._call(
                self._store.client.delete_item,
                TableName=self._store.table_name,
                Key=self._store._key(self.key, "lock"),
                ConditionExpression="#t = :token",
                ExpressionAttributeNames={"#t": "token"},
                ExpressionAttributeValues={":token": _s(self.token)},
            )


class DynamoDBStore(SessionStore):
    name = "dynamodb"
    can_revoke = True

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
    ) -> None:
        super().__init__(ttl=ttl, events_ttl=events_ttl)
        self.table_name = table_name
        self.endpoint_url = endpoint_url
        self.region = region
        self.create_table = create_table
        self.read_timeout = read_timeout
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._schema_lock = threading.Lock()
        self._schema_ready = False
        # (events partition, run prefix) -> (n, g, deadline or 0) as this store's last append left it.
        self._heads: OrderedDict[tuple[str, str], tuple[int, str, float]] = OrderedDict()
        self._heads_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        session = boto3.session.Session()
        credentials: dict[str, str] = {}
        if self.endpoint_url and session.get_credentials() is None:
            # A local endpoint (moto, DynamoDB Local) accepts any signature.
            credentials = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
        config = Config(
            connect_timeout=2,
            read_timeout=self.read_timeout,
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=64,
        )
        return session.client(
            "dynamodb", region_name=self.region, endpoint_url=self.endpoint_url, config=config, **credentials
        )

    def _call(self, operation: Callable[..., T], **kwargs: Any) -> T:
        """Call the client, creating the table once if it is missing; translate every error."""
        for attempt in (1, 2):
            try:
                return operation(**kwargs)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                message = exc.response.get("Error", {}).get("Message", "")
                if code == "ResourceNotFoundException" and attempt == 1 and self.create_table:
                    self.ensure_schema()
                    continue
                if code == "ConditionalCheckFailedException":
                    raise _ConditionFailed(message) from exc
                if code == "TransactionCanceledException":
                    cancelled = exc.response.get("CancellationReasons", [])
                    reasons = [r.get("Code") or "None" for r in cancelled]
                    details = [r.get("Message") or "" for r in cancelled]
                    raise _TransactionCancelled(f"dynamodb: {message}", reasons, details) from exc
                if code == "TransactionInProgressException":  # a retry met its first attempt still running
                    raise _Transient(f"dynamodb: {code}: {message}") from exc
                if code == "ValidationException" and "size" in message.lower():
                    raise PayloadTooLarge(f"dynamodb: {message}") from exc
                if code in _UNAVAILABLE:
                    raise StoreUnavailable(f"dynamodb: {code}: {message}") from exc
                raise StoreError(f"dynamodb: {code}: {message}") from exc
            except NoCredentialsError as exc:
                raise StoreError(f"dynamodb: {exc}; set AWS credentials or an endpoint URL") from exc
            except BotoCoreError as exc:
                raise StoreUnavailable(f"dynamodb: {exc}") from exc
        raise AssertionError("unreachable")

    def _pk(self, key: SessionKey) -> str:
        return f"{key.tenant}#{key.session_id}"

    def _key(self, key: SessionKey, sk: str) -> dict[str, dict[str, str]]:
        return {"pk": _s(self._pk(key)), "sk": _s(sk)}

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a query, page by page."""
        kwargs = {"TableName": self.table_name, "ConsistentRead": True, **kwargs}
        while True:
            page = self._call(self.client.query, **kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _get_meta(self, key: SessionKey) -> dict[str, Any] | None:
        reply = self._call(
            self.client.get_item, TableName=self.table_name, Key=self._key(key, "meta"), ConsistentRead=True
        )
        return reply.get("Item")

    @staticmethod
    def _live(meta: dict[str, Any] | None, now: float) -> bool:
        return meta is not None and ("deadline" not in meta or float(meta["deadline"]["N"]) > now)

    @staticmethod
    def _parse_meta(meta: dict[str, Any] | None) -> tuple[int, int, dict[str, int]]:
        if meta is None:
            return 0, 0, {}
        counts = {role: int(v["N"]) for role, v in meta.get("c", {}).get("M", {}).items()}
        return int(meta["v"]["N"]), int(meta["n"]["N"]), counts

    # -- reads ------------------------------------------------------------------------------

    def load(self, key: SessionKey, *, scopes: Sequence[str] = (SHARED_SCOPE,), window: int = 50) -> Snapshot:
        """Two round trips whatever the history: the meta item, then one query from the window on.

        ``lock`` < ``m#…`` < ``meta`` < ``s#…`` < ``x#…`` in key order, so ``m#<offset>`` to ``s$``
        returns the window, the meta item again and the state items. The meta item of that query is the truth:
        if a commit landed between the two reads, the snapshot is of the newer version.
        """
        return self._load_with_run(key, scopes, window, None)

    def _load_with_run(self, key: SessionKey, scopes: Sequence[str], window: int, run_id: str | None) -> Snapshot:
        """``load``, whose first read takes the run's record with the meta item."""
        now = time.time()
        run_committed = None
        if run_id is None:
            meta = self._get_meta(key)
        else:
            meta, run_committed = self._meta_and_run(key, run_id)
        if not self._live(meta, now):
            return Snapshot(0, [], 0, 0, {}, {scope: {} for scope in scopes})
        _, total, _ = self._parse_meta(meta)
        start = max(0, total - window)
        prefixes = {_scope_prefix(scope): scope for scope in scopes}
        items = list(
            self._query(
                KeyConditionExpression="pk = :pk AND sk BETWEEN :from AND :to",
                ExpressionAttributeValues={":pk": _s(self._pk(key)), ":from": _s(_seq(start)), ":to": _s("s$")},
            )
        )
        fresh = next((item for item in items if item["sk"]["S"] == "meta"), None)
        if not self._live(fresh, now):  # deleted or expired between the two reads
            return Snapshot(0, [], 0, 0, {}, {scope: {} for scope in scopes})
        version, total, counts = self._parse_meta(fresh)
        offset = max(start, total - window) if window else total
        messages: list[Message] = []
        state: dict[str, dict[str, Any]] = {scope: {} for scope in scopes}
        for item in items:
            sk = item["sk"]["S"]
            if sk.startswith("m#"):
                if offset <= int(sk[2:]) < total:
                    messages.append(Message.from_json(item["d"]["S"]))
            elif sk.startswith("s#"):
                cut = sk.index("#", 2) + 1  # escaped scopes hold no "#": the prefix ends at the second
                scope = prefixes.get(sk[:cut])
                if scope is not None:
                    state[scope][sk[cut:]] = loads(item["d"]["S"])
        return Snapshot(version, messages, offset, total, counts, state, run_committed)

    def history(self, key: SessionKey, *, start: int = 0, limit: int = 100) -> list[Message]:
        if start < 0 or limit <= 0:
            return []
        meta = self._get_meta(key)
        if not self._live(meta, time.time()):
            return []
        _, total, _ = self._parse_meta(meta)
        end = min(total, start + limit) - 1
        if end < start:
            return []
        items = self._query(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :a AND :b",
            ExpressionAttributeValues={":pk": _s(self._pk(key)), ":a": _s(_seq(start)), ":b": _s(_seq(end))},
        )
        return [Message.from_json(item["d"]["S"]) for item in items]

    # -- writes -----------------------------------------------------------------------------

    def commit(
        self,
        key: SessionKey,
        *,
        expected_version: int | None,
        append: Sequence[Message] = (),
        state: Mapping[str, Mapping[str, Any]] | None = None,
        run_id: str | None = None,
    ) -> CommitResult:
        writes = self._state_writes(key, state or {})
        bodies = [m.to_json() for m in append]
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

        # Every attempt of this commit writes this id: one whose answer was lost is recognised by it.
        commit_id = uuid.uuid4().hex
        sent: dict[str, Any] = {}  # what the last attempt sent: its base version, first message, result
        conflicts = backoff_delays(UNCONDITIONAL_PATIENCE, first=0.005, cap=0.2)
        transients = backoff_delays(TRANSIENT_PATIENCE, first=0.02, cap=0.5)
        while True:
            try:
                return self._commit_once(key, expected_version, append, bodies, writes, run_id, commit_id, sent)
            except _Transient as exc:
                delay = next(transients, None)
                if delay is None:
                    raise StoreUnavailable(f"dynamodb: the commit to {key.session_id} kept failing: {exc}") from None
            except VersionConflict:
                if expected_version is not None:
                    raise
                delay = next(conflicts, None)
                if delay is None:
                    raise
            time.sleep(delay)

    def _state_writes(self, key: SessionKey, state: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
        writes: list[dict[str, Any]] = []
        for scope, values in state.items():
            prefix = _scope_prefix(scope)
            for name, value in values.items():
                item_key = self._key(key, prefix + name)
                if value is DELETE:
                    writes.append({"Delete": {"TableName": self.table_name, "Key": item_key}})
                    continue
                body = dumps(value)
                if len(body.encode()) > MAX_ITEM_BYTES:
                    raise PayloadTooLarge(
                        f"state value {scope}/{name} is {len(body.encode())} bytes; one value holds at most "
                        f"{MAX_ITEM_BYTES}: split it over several keys"
                    )
                writes.append({"Put": {"TableName": self.table_name, "Item": {**item_key, "d": _s(body)}}})
        return writes

    def _commit_once(
        self,
        key: SessionKey,
        expected_version: int | None,
        append: Sequence[Message],
        bodies: list[str],
        writes: list[dict[str, Any]],
        run_id: str | None,
        commit_id: str,
        sent: dict[str, Any],
    ) -> CommitResult:
        now = time.time()
        meta = self._get_meta(key)
        moved = bool(sent) and self._parse_meta(meta)[0] != sent["version"]  # since our last attempt: by it?
        if moved and self._commit_landed(key, commit_id, sent["version"], sent["total"], appended=bool(bodies)):
            return sent["result"]
        if meta is not None and not self._live(meta, now):
            self._purge(key)  # expired: what is left of it must not show through the new session
            meta = None
        elif meta is None and self._has_leftovers(key):
            self._purge(key)  # DynamoDB's TTL took the meta item but not the rest
        version, total, counts = self._parse_meta(meta)
        if expected_version is not None and expected_version != version:
            raise VersionConflict(f"{key.session_id}: expected version {expected_version}, found {version}")

        for message in append:
            counts[message.counted_as] = counts.get(message.counted_as, 0) + 1
        new_meta: dict[str, Any] = {
            **self._key(key, "meta"),
            "v": _n(version + 1),
            "n": _n(total + len(append)),
            "c": {"M": {role: _n(count) for role, count in counts.items()}},
            "t": _s(commit_id),
        }
        if self.ttl > 0:
            new_meta["deadline"] = _n(now + self.ttl)
            new_meta["expires_at"] = _n(math.ceil(now + self.ttl))
        if meta is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {"ConditionExpression": "v = :v", "ExpressionAttributeValues": {":v": _n(version)}}
        actions: list[dict[str, Any]] = [{"Put": {"TableName": self.table_name, "Item": new_meta, **condition}}]
        for i, body in enumerate(bodies):
            item = {**self._key(key, _seq(total + i)), "d": _s(body)}
            if i == 0:
                item["t"] = _s(commit_id)
            actions.append({"Put": {"TableName": self.table_name, "Item": item}})
        actions += writes
        if run_id is not None:
            run_item = {**self._key(key, "x#run#" + run_id), "seq": _n(total)}
            actions.append({"Put": {"TableName": self.table_name, "Item": run_item}})
            absent = {"ConditionExpression": "attribute_not_exists(pk)"}
            actions.append({"ConditionCheck": {"TableName": self.table_name, "Key": self._mark(key, run_id), **absent}})
        result = CommitResult(version + 1, total + len(append), counts)
        sent.update(version=version, total=total, result=result)
        try:
            # The token makes botocore's retry of a timed-out call idempotent: DynamoDB applies it once.
            self._call(self.client.transact_write_items, TransactItems=actions, ClientRequestToken=uuid.uuid4().hex)
        except _TransactionCancelled as exc:
            if run_id is not None and exc.reasons[-1:] == ["ConditionalCheckFailed"]:
                raise RunRevoked(f"run {run_id} was revoked") from None  # the mark exists: nothing of ours applied
            if exc.reasons[:1] != ["ConditionalCheckFailed"]:
                raise _cancellation_error(exc, f"the commit to {key.session_id}") from None
            # The version condition: another commit, or an attempt of ours whose answer was lost.
            landed = self._commit_landed(key, commit_id, version, total, appended=bool(bodies))
            if landed is None:  # the version we read is still there: nothing applied, send it again
                raise _Transient(
                    f"dynamodb: the commit to {key.session_id} was cancelled at version {version}, which did not move"
                ) from None
            if not landed:
                raise VersionConflict(
                    f"{key.session_id}: expected version {version}, another commit came first"
                ) from None
        except _Transient:
            raise
        except StoreUnavailable as exc:
            # botocore gave up (timeouts, 500s), yet an attempt may have applied (or still be under
            # way): applied, it succeeded; the version unmoved, sending it again is safe, as at most
            # one of two attempts on the same version applies. A store that cannot say: unavailable.
            try:
                landed = self._commit_landed(key, commit_id, version, total, appended=bool(bodies))
            except _Transient:
                raise
            except StoreError:
                raise exc from None
            if landed:
                return result
            if landed is None:
                raise _Transient(str(exc)) from exc
            raise VersionConflict(f"{key.session_id}: expected version {version}, another commit came first") from exc
        return result

    def _commit_landed(
        self, key: SessionKey, commit_id: str, version: int, total: int, *, appended: bool
    ) -> bool | None:
        """Whether commit ``commit_id``, made on ``version`` with its first message numbered
        ``total``, is stored: True; False, another commit took its place; None, the session is
        still at ``version`` (nothing applied). One consistent read of the meta item and that message."""
        sks = ["meta", _seq(total)] if appended else ["meta"]
        try:
            reply = self._call(
                self.client.transact_get_items,
                TransactItems=[{"Get": {"TableName": self.table_name, "Key": self._key(key, sk)}} for sk in sks],
            )
        except _TransactionCancelled as exc:  # a write transaction on these items was under way
            raise _Transient(f"dynamodb: could not read back the commit to {key.session_id}: {exc}") from None
        meta, first = ([response.get("Item") for response in reply["Responses"]] + [None])[:2]
        if _commit_of(meta) == commit_id:
            return True
        stored = self._parse_meta(meta)[0]
        if stored > version + 1 and _commit_of(first) == commit_id:  # later commits followed it
            return True
        return None if stored == version else False

    def _mark(self, key: SessionKey, run_id: str) -> dict[str, dict[str, str]]:
        """The key of run ``run_id``'s revoke mark (see the module's docstring)."""
        return {"pk": _s(self._pk(key) + "#revoked"), "sk": _s(run_id)}

    def revoke(self, key: SessionKey, run_id: str) -> bool:
        absent = {"ConditionExpression": "attribute_not_exists(pk)"}
        committed = self._key(key, "x#run#" + run_id)
        # The mark outlives any run that could still try to commit, and goes with DynamoDB's TTL.
        expires = _n(math.ceil(time.time() + max(self.ttl, 7 * 86400)))
        actions = [
            {"ConditionCheck": {"TableName": self.table_name, "Key": committed, **absent}},
            {"Put": {"TableName": self.table_name, "Item": {**self._mark(key, run_id), "expires_at": expires}}},
        ]
        delays = backoff_delays(UNCONDITIONAL_PATIENCE, first=0.005, cap=0.2)
        while True:
            try:
                self._call(self.client.transact_write_items, TransactItems=actions)
                return True
            except _TransactionCancelled as exc:
                if exc.reasons[:1] == ["ConditionalCheckFailed"]:
                    return False  # it committed
                delay = next(delays, None)  # a concurrent transaction on the same items
                if delay is None:
                    raise StoreUnavailable(f"dynamodb: could not revoke run {run_id}: {exc}") from None
                time.sleep(delay)

    def committed(self, key: SessionKey, run_id: str) -> int | None:
        return self._meta_and_run(key, run_id)[1]

    def _meta_and_run(self, key: SessionKey, run_id: str) -> tuple[dict[str, Any] | None, int | None]:
        """The meta item and what ``committed`` says of the run, in one consistent read."""
        delays = backoff_delays(TRANSIENT_PATIENCE, first=0.02, cap=0.5)
        while True:
            now = time.time()
            try:
                reply = self._call(
                    self.client.transact_get_items,
                    TransactItems=[
                        {"Get": {"TableName": self.table_name, "Key": self._key(key, sk)}}
                        for sk in ("meta", "x#run#" + run_id)
                    ],
                )
                break
            except _TransactionCancelled as exc:  # a write transaction on these items (a revoke, a commit)
                delay = next(delays, None)
                if delay is None:
                    raise StoreUnavailable(f"dynamodb: could not read session {key.session_id}: {exc}") from None
                time.sleep(delay)
        meta, run = (response.get("Item") for response in reply["Responses"])
        return meta, (int(run["seq"]["N"]) if run is not None and self._live(meta, now) else None)

    def _has_leftovers(self, key: SessionKey) -> bool:
        reply = self._call(
            self.client.query,
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND sk > :lock",
            ExpressionAttributeValues={":pk": _s(self._pk(key)), ":lock": _s("lock")},
            ProjectionExpression="sk",
            Limit=1,
        )
        return bool(reply.get("Items"))

    def _purge(self, key: SessionKey, *, partition: str | None = None) -> int:
        """Delete every item of the session but its lock (or of another ``partition`` of it).
        Returns how many were deleted."""
        pk = partition or self._pk(key)
        keys = [
            item["sk"]["S"]
            for item in self._query(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": _s(pk)},
                ProjectionExpression="sk",
            )
            if item["sk"]["S"] != "lock"
        ]
        for start in range(0, len(keys), 25):
            requests = [{"DeleteRequest": {"Key": {"pk": _s(pk), "sk": _s(sk)}}} for sk in keys[start : start + 25]]
            delays = backoff_delays(UNCONDITIONAL_PATIENCE, first=0.01, cap=0.5)
            while requests:
                reply = self._call(self.client.batch_write_item, RequestItems={self.table_name: requests})
                requests = reply.get("UnprocessedItems", {}).get(self.table_name, [])
                if requests:
                    delay = next(delays, None)
                    if delay is None:
                        raise StoreUnavailable("dynamodb: deletes stayed unprocessed")
                    time.sleep(delay)
        return len(keys)

    def delete(self, key: SessionKey) -> bool:
        meta = self._get_meta(key)
        deleted = self._purge(key)
        self._purge(key, partition=self._pk(key) + "#revoked")
        self._purge(key, partition=self._events_pk(key))
        return deleted > 0 and self._live(meta, time.time())

    # -- event logs -------------------------------------------------------------------------

    def _events_pk(self, key: SessionKey) -> str:
        return self._pk(key) + "#events"

    @staticmethod
    def _head_state(head: dict[str, Any] | None) -> tuple[int, str, float] | None:
        """(n, g, deadline or 0) of a head item."""
        if head is None:
            return None
        return int(head["n"]["N"]), head["g"]["S"], float(head["deadline"]["N"]) if "deadline" in head else 0.0

    def _read_head(self, pk: str, prefix: str) -> tuple[int, str, float] | None:
        return self._head_state(self._read_head_item(pk, prefix))

    def _read_head_item(self, pk: str, prefix: str) -> dict[str, Any] | None:
        reply = self._call(
            self.client.get_item,
            TableName=self.table_name,
            Key={"pk": _s(pk), "sk": _s(prefix + "h")},
            ConsistentRead=True,
        )
        return reply.get("Item")

    def append_events(self, key: SessionKey, run_id: str, events: Sequence[tuple[str, dict[str, Any]]]) -> int:
        """One ``TransactWriteItems`` when this store made the log's last append, else a
        ``GetItem`` of the head first; again after losing a race to another appender."""
        check_run_id(run_id)
        rows = encode_events(events)
        for kind, body in rows:
            if len(body.encode()) + len(kind) > MAX_ITEM_BYTES:
                raise PayloadTooLarge(f"an event of {len(body.encode())} bytes exceeds {MAX_ITEM_BYTES}")
        size = sum(len(body.encode()) + len(kind) for kind, body in rows)
        if size > MAX_TRANSACTION_BYTES:
            raise PayloadTooLarge(f"one append holds at most {MAX_TRANSACTION_BYTES} bytes, not {size}")
        pk, prefix = self._events_pk(key), _run_prefix(run_id)
        if not rows:
            head = self._read_head(pk, prefix)
            return head[0] if head is not None and (not head[2] or head[2] > time.time()) else 0

        with self._heads_lock:
            head = self._heads.get((pk, prefix))
        remembered = head is not None
        if not remembered:
            head = self._read_head(pk, prefix)
        append_id = uuid.uuid4().hex  # on the head: an attempt whose answer was lost is recognised by it
        delays = backoff_delays(UNCONDITIONAL_PATIENCE, first=0.005, cap=0.2)
        while True:
            try:
                return self._append_once(pk, prefix, head, rows, append_id)
            except _TransactionCancelled as exc:
                with self._heads_lock:
                    self._heads.pop((pk, prefix), None)
                if not set(exc.reasons) <= {"None", "ConditionalCheckFailed", *_TRANSIENT_REASONS}:
                    raise _cancellation_error(exc, f"the append to the event log of run {run_id}") from None
                item = self._read_head_item(pk, prefix)
                head = self._head_state(item)
                if head is not None and _commit_of(item) == append_id:  # it applied: botocore's retry was cancelled
                    self._remember_head(pk, prefix, head)
                    return head[0]
                if not remembered:  # lost a race to another appender (a stale memory retries at once)
                    delay = next(delays, None)
                    if delay is None:
                        raise StoreUnavailable(f"dynamodb: could not append to the log of run {run_id}") from None
                    time.sleep(delay)
                remembered = False

    def _append_once(
        self, pk: str, prefix: str, head: tuple[int, str, float] | None, rows: list[tuple[str, str]], append_id: str
    ) -> int:
        now = time.time()
        if head is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "#n = :n AND #g = :g",
                "ExpressionAttributeNames": {"#n": "n", "#g": "g"},
                "ExpressionAttributeValues": {":n": _n(head[0]), ":g": _s(head[1])},
            }
        if head is not None and (not head[2] or head[2] > now):
            last, generation = head[0], head[1]
        else:  # no log, or an expired one: a new generation starts at 1
            last, generation = 0, uuid.uuid4().hex[:12]
        total = last + len(rows)
        head_item: dict[str, Any] = {"pk": _s(pk), "sk": _s(prefix + "h"), "n": _n(total), "g": _s(generation)}
        head_item["t"] = _s(append_id)
        event_extra: dict[str, Any] = {"g": _s(generation)}
        deadline = 0.0
        if self.events_ttl > 0:
            deadline = now + self.events_ttl
            head_item["deadline"] = _n(deadline)
            head_item["expires_at"] = _n(math.ceil(deadline))
            event_extra["expires_at"] = _n(math.ceil(deadline) + EVENT_ITEM_SLACK)
        actions: list[dict[str, Any]] = [{"Put": {"TableName": self.table_name, "Item": head_item, **condition}}]
        for number, (kind, body) in enumerate(rows, start=last + 1):
            item = {"pk": _s(pk), "sk": _s(_event_sk(prefix, number)), "k": _s(kind), "d": _s(body)}
            actions.append({"Put": {"TableName": self.table_name, "Item": {**item, **event_extra}}})
        # The token makes botocore's retry of a timed-out call idempotent: DynamoDB applies it once.
        self._call(self.client.transact_write_items, TransactItems=actions, ClientRequestToken=uuid.uuid4().hex)
        self._remember_head(pk, prefix, (total, generation, deadline))
        return total

    def _remember_head(self, pk: str, prefix: str, head: tuple[int, str, float]) -> None:
        with self._heads_lock:
            self._heads[(pk, prefix)] = head
            self._heads.move_to_end((pk, prefix))
            if len(self._heads) > HEADS_CACHED:
                self._heads.popitem(last=False)

    def read_events(self, key: SessionKey, run_id: str, *, after: int = 0, limit: int = 1000) -> list[Event]:
        """One ``Query`` (plus a ``GetItem`` of the head when more than ``limit`` events, or 1 MB,
        are pending, so that the head is past the page)."""
        check_run_id(run_id)
        if limit <= 0:
            return []
        after = max(after, 0)
        pk, prefix = self._events_pk(key), _run_prefix(run_id)
        page = self._call(
            self.client.query,
            TableName=self.table_name,
            ConsistentRead=True,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :from AND :to",
            ExpressionAttributeValues={
                ":pk": _s(pk),
                ":from": _s(_event_sk(prefix, after + 1)),
                ":to": _s(prefix + "h"),
            },
            Limit=limit + 1,
        )
        items = page.get("Items", [])
        if items and items[-1]["sk"]["S"] == prefix + "h":
            head = self._head_state(items.pop())
        elif "LastEvaluatedKey" in page:
            head = self._read_head(pk, prefix)
        else:  # the whole range up to the head was read: there is none
            return []
        if head is None or (head[2] and head[2] <= time.time()):
            return []
        last, generation, _ = head
        events: list[Event] = []
        for item in items:
            number = int(item["sk"]["S"][-12:])
            if number != after + len(events) + 1 or number > last or item["g"]["S"] != generation:
                break  # not yet visible, or left by an older generation
            events.append(Event(number, item["k"]["S"], loads(item["d"]["S"])))
            if len(events) == limit:
                break
        return events

    # -- coordination -----------------------------------------------------------------------

    def acquire(self, key: SessionKey, *, lease: float, wait: float) -> Lock:
        lock = _DynamoLock(self, key, lease)
        delays = backoff_delays(wait)
        while True:
            now = time.time()
            try:
                self._call(
                    self.client.put_item,
                    TableName=self.table_name,
                    Item={
                        **self._key(key, "lock"),
                        "token": _s(lock.token),
                        "until": _n(now + lease),
                        "expires_at": _n(math.ceil(now + lease) + 60),
                    },
                    # Our own token: botocore's retry of a put whose answer was lost (it applied).
                    ConditionExpression="attribute_not_exists(pk) OR #u <= :now OR #t = :token",
                    ExpressionAttributeNames={"#u": "until", "#t": "token"},
                    ExpressionAttributeValues={":now": _n(now), ":token": _s(lock.token)},
                )
                return lock
            except _ConditionFailed:
                pass
            delay = next(delays, None)
            if delay is None:
                raise SessionBusy(f"session {key.session_id} is busy")
            time.sleep(delay)

    # -- operations -------------------------------------------------------------------------

    def ping(self) -> None:
        self._call(self.client.describe_table, TableName=self.table_name)

    def ensure_schema(self) -> None:
        """Create the table (on-demand billing) and switch its TTL on; idempotent."""
        if self._schema_ready:
            return
        with self._schema_lock, _translated():
            try:
                self.client.create_table(
                    TableName=self.table_name,
                    AttributeDefinitions=[
                        {"AttributeName": "pk", "AttributeType": "S"},
                        {"AttributeName": "sk", "AttributeType": "S"},
                    ],
                    KeySchema=[
                        {"AttributeName": "pk", "KeyType": "HASH"},
                        {"AttributeName": "sk", "KeyType": "RANGE"},
                    ],
                    BillingMode="PAY_PER_REQUEST",
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
                    raise
            self.client.get_waiter("table_exists").wait(
                TableName=self.table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )
            ttl = self.client.describe_time_to_live(TableName=self.table_name)
            if ttl.get("TimeToLiveDescription", {}).get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                try:
                    self.client.update_time_to_live(
                        TableName=self.table_name,
                        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
                    )
                except ClientError as exc:  # another process switched it on first
                    if "already enabled" not in str(exc).lower():
                        raise
            self._schema_ready = True

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None


@contextmanager
def _translated() -> Iterator[None]:
    """Translate the errors of table management calls."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        if code in _UNAVAILABLE:
            raise StoreUnavailable(f"dynamodb: {code}: {error.get('Message', '')}") from exc
        raise StoreError(f"dynamodb: {code}: {error.get('Message', '')}") from exc
    except NoCredentialsError as exc:
        raise StoreError(f"dynamodb: {exc}; set AWS credentials or an endpoint URL") from exc
    except BotoCoreError as exc:
        raise StoreUnavailable(f"dynamodb: {exc}") from exc
