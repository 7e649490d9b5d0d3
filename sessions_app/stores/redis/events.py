"""Event logs on Redis::

    ak:{<tenant>:<session>}:ev:<run>    stream: run <run>'s event log, entry ids ``<n>-0`` for
                                        event n (fields k: kind, d: JSON data, sealed when
                                        encryption is on)
    ak:{<tenant>:<session>}:events      set of the run ids that have an event log, for ``delete_logs``

An append is one Lua call, a read one ``XRANGE``, a wait one ``XREAD BLOCK``. Redis expires
each log ``events_ttl`` after its last append.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from sessions_app.stores.base import SessionKey, StoreUnavailable, loads
from sessions_app.stores.events import Event, EventLog, check_run_id, encode_events
from sessions_app.stores.redis.client import Connection, prefix, translated
from sessions_app.stores.sealing import PLAIN, Sealer

# KEYS: the run's stream, the session's set of logs. ARGV: ttl (ms, 0: none), run id, then kind and
# data per event. Ids follow the stream's length: entries are never trimmed or deleted one by one.
_APPEND_EVENTS = """
local stream, logs, ttl, run = KEYS[1], KEYS[2], tonumber(ARGV[1]), ARGV[2]
local n = redis.call('XLEN', stream)
if #ARGV < 3 then return n end
for i = 3, #ARGV, 2 do
  n = n + 1
  redis.call('XADD', stream, string.format('%d-0', n), 'k', ARGV[i], 'd', ARGV[i + 1])
end
local fresh = redis.call('SADD', logs, run) == 1 and redis.call('SCARD', logs) == 1
if ttl > 0 then
  redis.call('PEXPIRE', stream, ttl)
  local left = redis.call('PTTL', logs)
  if fresh or (left >= 0 and left < ttl) then redis.call('PEXPIRE', logs, ttl) end
else
  redis.call('PERSIST', stream)
  redis.call('PERSIST', logs)
end
return n
"""

_DELETE_LOGS = """
for _, run in ipairs(redis.call('SMEMBERS', KEYS[1])) do redis.call('DEL', ARGV[1] .. 'ev:' .. run) end
return redis.call('DEL', KEYS[1])
"""


def events_key(key: SessionKey, run_id: str) -> str:
    """The stream of run ``run_id``'s event log."""
    return prefix(key) + "ev:" + run_id


def _events(sealer: Sealer, key: SessionKey, entries: Sequence[tuple[bytes, Mapping[bytes, bytes]]]) -> list[Event]:
    """Stream entries (``<n>-0``, {k, d}) as events."""
    open_ = sealer.opener(key)
    return [
        Event(int(id_.split(b"-", 1)[0]), fields[b"k"].decode(), loads(open_(fields[b"d"]))) for id_, fields in entries
    ]


class RedisEventLog(EventLog):
    """Event logs on the Redis of ``connection``."""

    def __init__(self, *, connection: Connection, events_ttl: float = 3600, sealer: Sealer = PLAIN) -> None:
        super().__init__(events_ttl=events_ttl)
        self.connection = connection
        self.sealer = sealer
        self._append_events = connection.client.register_script(_APPEND_EVENTS)
        self._delete_logs = connection.client.register_script(_DELETE_LOGS)

    def append_events(self, key: SessionKey, run_id: str, events: Sequence[tuple[str, dict[str, Any]]]) -> int:
        check_run_id(run_id)
        args: list[Any] = [int(self.events_ttl * 1000), run_id]
        for kind, data in encode_events(events):
            args.extend((kind, self.sealer.seal(key, data)))
        keys = [events_key(key, run_id), prefix(key) + "events"]
        return int(self.connection.call(self._append_events, keys=keys, args=args))

    def read_events(self, key: SessionKey, run_id: str, *, after: int = 0, limit: int = 1000) -> list[Event]:
        check_run_id(run_id)
        if limit <= 0:
            return []
        with translated():
            entries = self.connection.client.xrange(events_key(key, run_id), min=f"{max(after, 0) + 1}-0", count=limit)
        return _events(self.sealer, key, entries)

    async def wait_events(
        self, key: SessionKey, run_id: str, *, after: int = 0, timeout: float = 15.0, limit: int = 1000
    ) -> list[Event]:
        """One ``XREAD BLOCK`` on the running loop's asyncio client: it answers as soon as an event
        is there. The wait holds one of that client's connections; when its pool has none left
        (``max_connections`` of the store's options), this polls as the base class does."""
        check_run_id(run_id)
        if limit <= 0:
            return []
        loop = asyncio.get_running_loop()
        started = loop.time()
        block = max(1, int(timeout * 1000)) if timeout > 0 else None
        grace = self.connection.options.get("SOCKET_TIMEOUT") or 5.0
        with translated():
            try:
                client = await self.connection.async_client()
                async with asyncio.timeout(max(timeout, 0) + grace):
                    stream = {events_key(key, run_id): f"{max(after, 0)}-0"}
                    reply = await client.xread(stream, count=limit, block=block)
            except TimeoutError as exc:
                raise StoreUnavailable(f"redis: XREAD did not answer within {max(timeout, 0) + grace:.1f}s") from exc
            except redis.ConnectionError:  # no connection for us (or none at all: then the polls raise)
                remaining = max(0.0, timeout - (loop.time() - started))
                return await super().wait_events(key, run_id, after=after, timeout=remaining, limit=limit)
        return _events(self.sealer, key, reply[0][1]) if reply else []  # [[stream, entries]]: one stream asked

    def delete_logs(self, key: SessionKey) -> None:
        self.connection.call(self._delete_logs, keys=[prefix(key) + "events"], args=[prefix(key)])
