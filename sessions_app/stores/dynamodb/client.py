"""The table's client: boto3's low-level client (one per store), its errors translated into the
store's. Each transaction carries a ``ClientRequestToken`` so that botocore's retry applies once;
a cancellation other than by a condition is never a conflict (``cancellation_error``).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from sessions_app.stores.base import PayloadTooLarge, StoreError, StoreUnavailable
from sessions_app.stores.dynamodb.schema import create_table

#: Largest JSON payload of one item: DynamoDB's limit is 400 KB including names and keys.
MAX_ITEM_BYTES = 380_000
#: Largest transaction: 100 actions and 4 MB.
MAX_ACTIONS = 100
MAX_TRANSACTION_BYTES = 4_000_000

_UNAVAILABLE = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "LimitExceededException",
}
#: Cancellation reasons of a transaction that applied nothing and may apply when sent again.
TRANSIENT_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)
#: Operations on one table, that take its name.
_ON_THE_TABLE = {"get_item", "put_item", "update_item", "delete_item", "query", "describe_table"}


class ConditionFailed(StoreError):
    """A single-item conditional write did not apply."""


class TransactionCancelled(StoreUnavailable):
    """A transaction did not apply; ``reasons`` holds each action's code (``"None"`` for an action
    that was fine), ``details`` each action's message, in order."""

    def __init__(self, message: str, reasons: list[str], details: list[str]) -> None:
        super().__init__(message)
        self.reasons = reasons
        self.details = details


class Transient(StoreUnavailable):
    """Nothing applied, and sending it again may succeed."""


def cancellation_error(exc: TransactionCancelled, what: str) -> StoreError:
    """The contract's error for a transaction cancelled by anything but a condition of ours."""
    pairs = list(zip(exc.reasons, exc.details, strict=True))
    codes = [code for code in exc.reasons if code not in ("None", "")]
    text = "; ".join(f"{code}: {detail}" if detail else code for code, detail in pairs)
    if "ItemCollectionSizeLimitExceeded" in codes:
        return PayloadTooLarge(f"dynamodb: {what}: the session's items exceed their collection's size limit ({text})")
    for code, detail in pairs:
        if code == "ValidationError":
            if "size" in detail.lower():
                return PayloadTooLarge(f"dynamodb: {what}: {detail}")
            return StoreError(f"dynamodb: {what} was refused: {text}")
    if codes and set(codes) <= TRANSIENT_REASONS:
        return Transient(f"dynamodb: {what} was cancelled: {text}")
    return StoreUnavailable(f"dynamodb: {what} was cancelled: {text or exc}")


def translated(exc: Exception) -> StoreError:
    """The store's error for an error of botocore's."""
    if isinstance(exc, NoCredentialsError):
        return StoreError(f"dynamodb: {exc}; set AWS credentials or an endpoint URL")
    if not isinstance(exc, ClientError):
        return StoreUnavailable(f"dynamodb: {exc}")
    code = exc.response.get("Error", {}).get("Code", "")
    message = exc.response.get("Error", {}).get("Message", "")
    if code == "ConditionalCheckFailedException":
        return ConditionFailed(message)
    if code == "TransactionCanceledException":
        cancelled = exc.response.get("CancellationReasons", [])
        reasons = [r.get("Code") or "None" for r in cancelled]
        return TransactionCancelled(f"dynamodb: {message}", reasons, [r.get("Message") or "" for r in cancelled])
    if code == "TransactionInProgressException":  # a retry met its first attempt still running
        return Transient(f"dynamodb: {code}: {message}")
    if code == "ValidationException" and "size" in message.lower():
        return PayloadTooLarge(f"dynamodb: {message}")
    if code in _UNAVAILABLE:
        return StoreUnavailable(f"dynamodb: {code}: {message}")
    return StoreError(f"dynamodb: {code}: {message}")


class Table:
    """One table through one client, made on first use and again after ``close``."""

    def __init__(self, *, name: str, endpoint_url: str | None, region: str, create: bool, read_timeout: float) -> None:
        self.name = name
        self.endpoint_url = endpoint_url
        self.region = region
        self.create = create
        self.read_timeout = read_timeout
        self._client: Any = None
        self._lock = threading.Lock()
        self._schema_lock = threading.Lock()
        self._ready = False

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
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
                self._client = session.client(
                    "dynamodb", region_name=self.region, endpoint_url=self.endpoint_url, config=config, **credentials
                )
            return self._client

    def call(self, operation: str, **kwargs: Any) -> Any:
        """Call ``operation`` of the client (on this table), creating the table once if it is
        missing; raise the store's errors only."""
        if operation in _ON_THE_TABLE:
            kwargs["TableName"] = self.name
        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException" or not self.create:
                raise translated(exc) from exc
        except BotoCoreError as exc:
            raise translated(exc) from exc
        self.ensure()  # the table was missing: once created, the call is sent once more
        try:
            return getattr(self.client, operation)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise translated(exc) from exc

    def get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        """One item, read consistently; None if it is not there."""
        return self.call("get_item", Key=key, ConsistentRead=True).get("Item")

    def get_together(self, keys: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        """Items read in one transaction (``TransactionCancelled`` while one is being written)."""
        reply = self.call(
            "transact_get_items", TransactItems=[{"Get": {"TableName": self.name, "Key": k}} for k in keys]
        )
        return [response.get("Item") for response in reply["Responses"]]

    def query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a consistent query, page by page."""
        kwargs["ConsistentRead"] = True
        while True:
            page = self.call("query", **kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def write_together(self, actions: list[dict[str, Any]]) -> None:
        """One ``TransactWriteItems`` of ``actions`` (``put``, ``delete``, ``absent``)."""
        # The token makes botocore's retry of a timed-out call idempotent: DynamoDB applies it once.
        self.call("transact_write_items", TransactItems=actions, ClientRequestToken=uuid.uuid4().hex)

    def put(self, item: dict[str, Any], **condition: Any) -> dict[str, Any]:
        return {"Put": {"TableName": self.name, "Item": item, **condition}}

    def delete(self, key: dict[str, Any]) -> dict[str, Any]:
        return {"Delete": {"TableName": self.name, "Key": key}}

    def absent(self, key: dict[str, Any]) -> dict[str, Any]:
        """An action that cancels its transaction if item ``key`` exists."""
        return {
            "ConditionCheck": {"TableName": self.name, "Key": key, "ConditionExpression": "attribute_not_exists(pk)"}
        }

    def ensure(self) -> None:
        """Create the table and switch its TTL on, once per store; idempotent."""
        if self._ready:
            return
        with self._schema_lock:
            try:
                create_table(self.client, self.name)
            except (ClientError, BotoCoreError) as exc:
                raise translated(exc) from exc
            self._ready = True

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
