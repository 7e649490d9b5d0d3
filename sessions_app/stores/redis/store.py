"""Redis store, through django-redis' connection pool (``client``); event logs in ``events``.

Keys of one session share a hash tag, so they live on one cluster slot::

    ak:{<tenant>:<session>}:meta        hash: v (version), n (messages), c:<role> (count per role)
    ak:{<tenant>:<session>}:msgs        list of JSON messages, oldest first
    ak:{<tenant>:<session>}:scopes      set of state scopes in use
    ak:{<tenant>:<session>}:st:<scope>  hash of JSON state values
                                        (messages and values sealed by ``sealer`` when encryption is on)
    ak:{<tenant>:<session>}:runs        hash: run id -> number of the run's first message, or "r"
                                        for a revoked run (its commit is refused)
    ak:{<tenant>:<session>}:lock        lock token, with the lease as its PX expiry

``load`` is one MULTI/EXEC round trip and ``commit`` one Lua call, whatever the history length:
``LRANGE -window -1`` reads from the tail and ``RPUSH`` appends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from sessions_app.stores.base import (
    DELETE,
    SHARED_SCOPE,
    CommitResult,
    Lock,
    LockLost,
    Message,
    RunRevoked,
    SessionKey,
    SessionStore,
    Snapshot,
    VersionConflict,
    loads,
)
from sessions_app.stores.redis.client import Connection, prefix, translated
from sessions_app.stores.redis.events import RedisEventLog
from sessions_app.stores.redis.reseal import reseal
from sessions_app.stores.sealing import PLAIN, Sealer

_COMMIT = """
local meta, msgs, scopes, runs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, expected, ttl, run = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local version = tonumber(redis.call('HGET', meta, 'v') or '0')
if expected ~= '' and tonumber(expected) ~= version then
  return {-1, version}
end
if run ~= '' then
  if redis.call('HGET', runs, run) == 'r' then return {-2, version} end
  redis.call('HSET', runs, run, redis.call('LLEN', msgs))
end
local i = 5
local m = tonumber(ARGV[i]); i = i + 1
local total
if m > 0 then
  total = redis.call('RPUSH', msgs, unpack(ARGV, i, i + m - 1)); i = i + m
  local nroles = tonumber(ARGV[i]); i = i + 1
  for _ = 1, nroles do redis.call('HINCRBY', meta, 'c:' .. ARGV[i], ARGV[i + 1]); i = i + 2 end
else
  total = redis.call('LLEN', msgs)
end
local nscopes = tonumber(ARGV[i]); i = i + 1
for _ = 1, nscopes do
  local scope = ARGV[i]; i = i + 1
  local hash = prefix .. 'st:' .. scope
  redis.call('SADD', scopes, scope)
  local nset = tonumber(ARGV[i]); i = i + 1
  if nset > 0 then redis.call('HSET', hash, unpack(ARGV, i, i + 2 * nset - 1)); i = i + 2 * nset end
  local ndel = tonumber(ARGV[i]); i = i + 1
  if ndel > 0 then redis.call('HDEL', hash, unpack(ARGV, i, i + ndel - 1)); i = i + ndel end
end
version = version + 1
redis.call('HSET', meta, 'v', version, 'n', total)
if ttl > 0 then
  redis.call('PEXPIRE', meta, ttl)
  redis.call('PEXPIRE', msgs, ttl)
  redis.call('PEXPIRE', scopes, ttl)
  redis.call('PEXPIRE', runs, ttl)
  for _, scope in ipairs(redis.call('SMEMBERS', scopes)) do redis.call('PEXPIRE', prefix .. 'st:' .. scope, ttl) end
end
return redis.call('HGETALL', meta)
"""

_DELETE = """
local n = redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
for _, scope in ipairs(redis.call('SMEMBERS', KEYS[3])) do n = n + redis.call('DEL', ARGV[1] .. 'st:' .. scope) end
return n + redis.call('DEL', KEYS[3])
"""

_REVOKE = """
local seen = redis.call('HGET', KEYS[1], ARGV[1])
if seen and seen ~= 'r' then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], 'r')
local ttl = tonumber(ARGV[2])
if ttl > 0 and redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _keys(at: str) -> list[str]:
    """The keys of one session that its scripts name (state hashes are found via ``scopes``)."""
    return [at + "meta", at + "msgs", at + "scopes", at + "runs"]


def _parse_meta(raw: Mapping[bytes, bytes]) -> tuple[int, int, dict[str, int]]:
    version = int(raw.get(b"v", 0))
    total = int(raw.get(b"n", 0))
    counts = {k[2:].decode(): int(v) for k, v in raw.items() if k.startswith(b"c:")}
    return version, total, counts


def _messages(sealer: Sealer, key: SessionKey, raw: list[bytes]) -> list[Message]:
    """Open stored messages and parse them as one JSON array: one parser call, not one per message."""
    if not raw:
        return []
    opened = map(sealer.opener(key), raw)
    return [Message.from_dict(m) for m in loads(b"[" + b",".join(opened) + b"]")]  # type: ignore[arg-type]


class _RedisLock(Lock):
    """The key ``lock``: the holder's token, with the lease as its PX expiry."""

    store: RedisStore

    @property
    def name(self) -> str:
        return prefix(self.key) + "lock"

    def take(self) -> bool:
        with translated():
            return bool(self.store.client.set(self.name, self.token, nx=True, px=max(1, int(self.lease * 1000))))

    def renew(self) -> None:
        if not self.store.call(self.store._renew, keys=[self.name], args=[self.token, int(self.lease * 1000)]):
            raise LockLost(f"lock on {self.key.session_id} was lost")

    def release(self) -> None:
        self.store.call(self.store._release, keys=[self.name], args=[self.token])


class RedisStore(SessionStore, RedisEventLog):
    name = "redis"
    lock_class = _RedisLock

    def __init__(
        self,
        *,
        ttl: float = 0,
        events_ttl: float = 3600,
        cache_alias: str = "ak_sessions",
        url: str | None = None,
        sealer: Sealer = PLAIN,
    ) -> None:
        SessionStore.__init__(self, ttl=ttl)
        connection = Connection(cache_alias=cache_alias, url=url)
        RedisEventLog.__init__(self, connection=connection, events_ttl=events_ttl, sealer=sealer)
        client = self.client
        self._commit = client.register_script(_COMMIT)
        self._delete = client.register_script(_DELETE)
        self._revoke = client.register_script(_REVOKE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self.call = self.connection.call

    @property
    def client(self) -> redis.Redis:
        return self.connection.client

    def load(self, key: SessionKey, *, scopes: Sequence[str] = (SHARED_SCOPE,), window: int = 50) -> Snapshot:
        at = prefix(key)
        with translated():
            pipeline = self.client.pipeline(transaction=True)  # MULTI/EXEC: one round trip
            pipeline.hgetall(at + "meta")
            if window > 0:
                pipeline.lrange(at + "msgs", -window, -1)
            for scope in scopes:
                pipeline.hgetall(at + "st:" + scope)
            replies = pipeline.execute()
        version, total, counts = _parse_meta(replies[0])
        messages = _messages(self.sealer, key, replies[1]) if window > 0 else []
        states = replies[2:] if window > 0 else replies[1:]
        open_ = self.sealer.opener(key)
        state = {
            s: {k.decode(): loads(open_(v)) for k, v in raw.items()} for s, raw in zip(scopes, states, strict=True)
        }
        return Snapshot(version, messages, total - len(messages), total, counts, state)

    def history(self, key: SessionKey, *, start: int = 0, limit: int = 100) -> list[Message]:
        if start < 0 or limit <= 0:
            return []
        with translated():
            raw = self.client.lrange(prefix(key) + "msgs", start, start + limit - 1)
        return _messages(self.sealer, key, raw)

    def commit(
        self,
        key: SessionKey,
        *,
        expected_version: int | None,
        append: Sequence[Message] = (),
        state: Mapping[str, Mapping[str, Any]] | None = None,
        run_id: str | None = None,
    ) -> CommitResult:
        """One Lua call."""
        at = prefix(key)
        expected = "" if expected_version is None else expected_version
        args: list[Any] = [at, expected, int(self.ttl * 1000), run_id or "", len(append)]
        args.extend(self.sealer.message(key, m) for m in append)
        if append:
            roles = Counter(m.counted_as for m in append)
            args.append(len(roles))
            args.extend(part for pair in roles.items() for part in pair)
        scopes = state or {}
        args.append(len(scopes))
        for scope, values in scopes.items():
            sets = [(k, self.sealer.value(key, v)) for k, v in values.items() if v is not DELETE]
            deletes = [k for k, v in values.items() if v is DELETE]
            args.extend([scope, len(sets), *(part for pair in sets for part in pair), len(deletes), *deletes])
        reply = self.call(self._commit, keys=_keys(at), args=args)
        if reply and reply[0] == -1:
            raise VersionConflict(f"{key.session_id}: expected version {expected_version}, found {reply[1]}")
        if reply and reply[0] == -2:
            raise RunRevoked(f"run {run_id} was revoked")
        version, total, counts = _parse_meta(dict(zip(reply[::2], reply[1::2], strict=True)))
        return CommitResult(version, total, counts)

    def reseal(self, key: SessionKey) -> int:
        return reseal(self, key)

    def committed(self, key: SessionKey, run_id: str) -> int | None:
        with translated():
            first = self.client.hget(prefix(key) + "runs", run_id)
        return None if first is None or first == b"r" else int(first)  # "r": revoked

    def revoke(self, key: SessionKey, run_id: str) -> bool:
        return bool(self.call(self._revoke, keys=[prefix(key) + "runs"], args=[run_id, int(self.ttl * 1000)]))

    def delete(self, key: SessionKey) -> bool:
        self.delete_logs(key)
        return bool(self.call(self._delete, keys=_keys(prefix(key)), args=[prefix(key)]))

    def ping(self) -> None:
        with translated():
            self.client.ping()

    def close(self) -> None:
        self.connection.close()
