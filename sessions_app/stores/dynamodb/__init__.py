"""The DynamoDB backend, through boto3's low-level client: one table (``schema``) reached through
one client per store (``client``: errors and retries); commits and their recovery (``commits``),
the per-session lock (``lock``), purges of deleted and expired sessions (``purge``) and event
logs (``events``), composed by ``DynamoDBStore`` (``store``)."""

from sessions_app.stores.dynamodb.client import MAX_ITEM_BYTES
from sessions_app.stores.dynamodb.store import DynamoDBStore

__all__ = ["MAX_ITEM_BYTES", "DynamoDBStore"]
