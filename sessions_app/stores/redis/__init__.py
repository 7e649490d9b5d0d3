"""The Redis backend: sessions (``store``) and event logs (``events``) over one ``client``."""

from sessions_app.stores.redis.events import RedisEventLog, events_key
from sessions_app.stores.redis.store import RedisStore

__all__ = ["RedisEventLog", "RedisStore", "events_key"]
