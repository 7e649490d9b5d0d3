"""The DynamoDB backend: one table (``schema``, ``client``), composed by ``DynamoDBStore``."""

from sessions_app.stores.dynamodb.client import MAX_ITEM_BYTES
from sessions_app.stores.dynamodb.store import DynamoDBStore

__all__ = ["MAX_ITEM_BYTES", "DynamoDBStore"]
