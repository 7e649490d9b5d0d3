"""Redis store, through django-redis' connection pool.

Keys of one session share a hash tag, so they live on one cluster slot::

    ak:{<tenant>:<session>}:meta        hash: v (version), n (messages), c:<role> (count per role)
    ak:{<tenant>:<session>}:msgs        list of JSON messages, oldest first
    ak:{<tenant>:<session>}:scopes      set of state scopes in use
    ak:{<tenant>:<session>}:st:<scope>  hash of JSON state values
    ak:{<tenant>:<session>}:runs        hash: run id -> number of the run's first message, or "r"
                                        for a revoked run (its commit is refused)
    ak:{<tenant>:<session>}:lock        lock token, with the lease as its PX expiry
    ak:{<tenant>:<session>}:ev:<run>    stream: run <run>'s event log, entry ids ``<n>-0`` for
                                        event n (fields k: kind, d: JSON data)
    ak:{<tenant>:<session>}:events      set of the run ids that have an event log, for ``delete``

``load`` is one MULTI/EXEC round trip and ``commit`` one Lua call, whatever the history length
(a run's ``acquire_and_load`` and ``commit_and_release`` are one round trip each, too):
``LRANGE -window -1`` reads from the tail and ``RPUSH`` appends, so nothing grows with history.
(A Lua ``load`` was measured slower: Lua copies every message into its own strings.) The window's
messages are parsed as one JSON array, and hiredis parses the replies.

An event log is a stream of its own, appended by one Lua call (``XLEN``, then ``XADD`` with the
explicit ids that follow, ``PEXPIRE`` of the stream and of the session's ``events`` set) and read
by one ``XRANGE``. Redis expires each log ``events_ttl`` after its last append; ``delete`` takes
the logs named in ``events`` (their number, not the database's, bounds its cost).
``wait_events`` is one ``XREAD BLOCK`` on a ``redis.asyncio`` client of the running event loop,
built from the store's URL and options (an asyncio connection belongs to the loop that made it).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import Any, TypeVar

import redis
import redis.asyncio
from django.conf import settings
from django_redis.pool import get_connection_factory

from sessions_app.stores.base import (
    DELETE,
    SHARED_SCOPE,
    CommitResult,
    Event,
    Lock,
    LockLost,
    Message,
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

_COMMIT = """
local meta, msgs, scopes, runs, lock = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix, expected, ttl, run, token = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local version = tonumber(redis.call('HGET', meta, 'v') or '0')
if expected ~= '' and tonumber(expected) ~= version then
  return {-1, version}
end
if run ~= '' then
  if redis.call('HGET', runs, run) == 'r' then return {-2, version} end
  redis.call('HSET', runs, run, redis.call('LLEN', msgs))
end
local i = 6
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
if token ~= '' and redis.call('GET', lock) == token then redis.call('DEL', lock) end
return redis.call('HGETALL', meta)
"""

_DELETE = """
local n = redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
for _, scope in ipairs(redis.call('SMEMBERS', KEYS[3])) do n = n + redis.call('DEL', ARGV[1] .. 'st:' .. scope) end
for _, run in ipairs(redis.call('SMEMBERS', KEYS[5])) do redis.call('DEL', ARGV[1] .. 'ev:' .. run) end
redis.call('DEL', KEYS[5])
return n + redis.call('DEL', KEYS[3])
"""

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


@contextmanager
def _translated() -> Iterator[None]:
    """Turn redis-py's errors into the store's."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailable(f"redis: {exc}") from exc
    except redis.RedisError as exc:
        raise StoreError(f"redis: {exc}") from exc


def _prefix(key: SessionKey) -> str:
    return f"ak:{{{key.tenant}:{key.session_id}}}:"


def events_key(key: SessionKey, run_id: str) -> str:
    """The stream of run ``run_id``'s event log."""
    return _prefix(key) + "ev:" + run_id


def _events(entries: Sequence[tuple[bytes, Mapping[bytes, bytes]]]) -> list[Event]:
    """Stream entries (``<n>-0``, {k, d}) as events."""
    return [Event(int(id_.split(b"-", 1)[0]), fields[b"k"].decode(), loads(fields[b"d"])) for id_, fields in entries]


async def _closed_with_loop(client: redis.asyncio.Redis) -> AsyncGenerator[None, None]:
    """Started once per loop: the loop closes it on shutdown (``loop.shutdown_asyncgens``, which
    ``asyncio.run`` and asgiref call), and the client's connections go with their loop."""
    try:
        yield
    finally:
        await client.aclose()


def _keys(prefix: str) -> list[str]:
    """The keys of one session that its scripts name (state hashes are found via ``scopes``)."""
    return [prefix + "meta", prefix + "msgs", prefix + "scopes", prefix + "runs"]


def _load_commands(key: SessionKey, scopes: Sequence[str], window: int) -> list[tuple[Any, ...]]:
    """What ``load`` reads: meta, the window of messages (if any), one hash per scope."""
    prefix = _prefix(key)
    commands: list[tuple[Any, ...]] = [("HGETALL", prefix + "meta")]
    if window > 0:
        commands.append(("LRANGE", prefix + "msgs", -window, -1))
    return commands + [("HGETALL", prefix + "st:" + scope) for scope in scopes]


def _parse_meta(raw: Mapping[bytes, bytes]) -> tuple[int, int, dict[str, int]]:
    version = int(raw.get(b"v", 0))
    total = int(raw.get(b"n", 0))
    counts = {k[2:].decode(): int(v) for k, v in raw.items() if k.startswith(b"c:")}
    return version, total, counts


def _pairs(flat: list[bytes] | dict[bytes, bytes]) -> dict[bytes, bytes]:
    """A hash as raw ``HGETALL`` returns it (a flat list under RESP2) as a dict."""
    return flat if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2], strict=True))


def _first_message(raw: bytes | None) -> int | None:
    """A ``runs`` entry: the number of the run's first message; None if it never committed."""
    return None if raw is None or raw == b"r" else int(raw)


def _messages(raw: list[bytes]) -> list[Message]:
    """Parse stored messages as one JSON array: one parser call instead of one per message."""
    return [Message.from_dict(m) for m in loads(b"[" + b",".join(raw) + b"]")] if raw else []


class _RedisLock(Lock):
    def __init__(self, store: RedisStore, key: SessionKey, lease: float) -> None:
        super().__init__(key, lease)
        self._store = store
        self.name = _prefix(key) + "lock"

    def renew(self) -> None:
        if not self._store._call(self._store._renew, keys=[self.name], args=[self.token, int(self.lease * 1000)]):
            raise LockLost(f"lock on {self.key.session_id} was lost")

    def release(self) -> None:
        self._store._call(self._store._release, keys=[self.name], args=[self.token])


class RedisStore(SessionStore):
    name = "redis"
    can_revoke = True

    def __init__(
        self, *, ttl: float = 0, events_ttl: float = 3600, cache_alias: str = "ak_sessions", url: str | None = None
    ) -> None:
        super().__init__(ttl=ttl, events_ttl=events_ttl)
        cache = settings.CACHES[cache_alias]
        self.url = url or cache["LOCATION"]
        self._options = cache.get("OPTIONS", {})
        self._client: redis.Redis | None = None
        # One asyncio client per event loop, closed with its loop (see ``_closed_with_loop``).
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[redis.asyncio.Redis, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()
        self._async_lock = threading.Lock()
        client = self.client
        self._commit = client.register_script(_COMMIT)
        self._delete = client.register_script(_DELETE)
        self._append_events = client.register_script(_APPEND_EVENTS)
        self._revoke = client.register_script(_REVOKE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = get_connection_factory(options=self._options).connect(self.url)
        return self._client

    def _call(self, script: Callable[..., T], *, keys: list[str], args: list[Any]) -> T:
        with _translated():
            return script(keys=keys, args=args, client=self.client)

    def load(self, key: SessionKey, *, scopes: Sequence[str] = (SHARED_SCOPE,), window: int = 50) -> Snapshot:
        return self._snapshot(self._transaction(_load_commands(key, scopes, window)), scopes, window)

    def acquire_and_load(
        self,
        key: SessionKey,
        *,
        lease: float,
        wait: float,
        scopes: Sequence[str] = (SHARED_SCOPE,),
        window: int = 50,
        run_id: str | None = None,
    ) -> tuple[Lock, Snapshot]:
        """The first try is one MULTI/EXEC: take the lock, read, and look the run up; a busy
        session waits as ``acquire`` does, then reads."""
        lock = _RedisLock(self, key, lease)
        take = ("SET", lock.name, lock.token, "NX", "PX", max(1, int(lease * 1000)))
        commands = [take, *_load_commands(key, scopes, window)]
        if run_id is not None:
            commands.append(("HGET", _prefix(key) + "runs", run_id))
        replies = self._transaction(commands)
        if replies[0] is None:  # busy: the read was not under our lock
            return super().acquire_and_load(key, lease=lease, wait=wait, scopes=scopes, window=window, run_id=run_id)
        try:
            if run_id is None:
                return lock, self._snapshot(replies[1:], scopes, window)
            snapshot = self._snapshot(replies[1:-1], scopes, window)
            return lock, replace(snapshot, run_committed=_first_message(replies[-1]))
        except BaseException:
            with suppress(StoreError):
                lock.release()
            raise

    @staticmethod
    def _snapshot(replies: list[Any], scopes: Sequence[str], window: int) -> Snapshot:
        version, total, counts = _parse_meta(_pairs(replies[0]))
        messages = _messages(replies[1]) if window > 0 else []
        states = replies[2:] if window > 0 else replies[1:]
        return Snapshot(
            version=version,
            messages=messages,
            offset=total - len(messages),
            total=total,
            role_counts=counts,
            state={
                s: {k.decode(): loads(v) for k, v in _pairs(raw).items()} for s, raw in zip(scopes, states, strict=True)
            },
        )

    def _transaction(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Run ``commands`` in one MULTI/EXEC round trip; return their raw replies.

        Straight on a pooled connection: redis-py's ``Pipeline`` costs about 20 µs more per call
        in Python, a fifth of a whole ``load``. A connection that failed mid-way is dropped.
        """
        with _translated():
            pool = self.client.connection_pool
            connection = pool.get_connection()
            try:
                connection.send_packed_command(connection.pack_commands([("MULTI",), *commands, ("EXEC",)]))
                for _ in range(len(commands) + 1):
                    connection.read_response()  # OK, then QUEUED per command
                replies = connection.read_response()
            except BaseException:
                connection.disconnect()
                raise
            finally:
                pool.release(connection)
        for reply in replies:
            if isinstance(reply, Exception):
                raise StoreError(f"redis: {reply}")
        return replies

    def history(self, key: SessionKey, *, start: int = 0, limit: int = 100) -> list[Message]:
        if start < 0 or limit <= 0:
            return []
        with _translated():
            raw = self.client.lrange(_prefix(key) + "msgs", start, start + limit - 1)
        return _messages(raw)

    def commit(
        self,
        key: SessionKey,
        *,
        expected_version: int | None,
        append: Sequence[Message] = (),
        state: Mapping[str, Mapping[str, Any]] | None = None,
        run_id: str | None = None,
    ) -> CommitResult:
        return self._commit_script(key, expected_version, append, state, run_id, release="")

    def commit_and_release(
        self,
        lock: Lock,
        *,
        expected_version: int | None,
        append: Sequence[Message] = (),
        state: Mapping[str, Mapping[str, Any]] | None = None,
        run_id: str | None = None,
    ) -> CommitResult:
        """One Lua call: the commit, then the lock's release if the commit was written."""
        return self._commit_script(lock.key, expected_version, append, state, run_id, release=lock.token)

    def _commit_script(
        self,
        key: SessionKey,
        expected_version: int | None,
        append: Sequence[Message],
        state: Mapping[str, Mapping[str, Any]] | None,
        run_id: str | None,
        *,
        release: str,
    ) -> CommitResult:
        prefix = _prefix(key)
        expected = "" if expected_version is None else expected_version
        args: list[Any] = [prefix, expected, int(self.ttl * 1000), run_id or "", release]
        args.append(len(append))
        args.extend(m.to_json() for m in append)
        if append:
            roles = Counter(m.counted_as for m in append)
            args.append(len(roles))
            for pair in roles.items():
                args.extend(pair)
        scopes = state or {}
        args.append(len(scopes))
        for scope, values in scopes.items():
            sets = [(k, dumps(v)) for k, v in values.items() if v is not DELETE]
            deletes = [k for k, v in values.items() if v is DELETE]
            args.extend([scope, len(sets)])
            for pair in sets:
                args.extend(pair)
            args.append(len(deletes))
            args.extend(deletes)
        reply = self._call(self._commit, keys=[*_keys(prefix), prefix + "lock"], args=args)
        if reply and reply[0] == -1:
            raise VersionConflict(f"{key.session_id}: expected version {expected_version}, found {reply[1]}")
        if reply and reply[0] == -2:
            raise RunRevoked(f"run {run_id} was revoked")
        version, total, counts = _parse_meta(dict(zip(reply[::2], reply[1::2], strict=True)))
        return CommitResult(version, total, counts)

    def committed(self, key: SessionKey, run_id: str) -> int | None:
        with _translated():
            return _first_message(self.client.hget(_prefix(key) + "runs", run_id))

    def revoke(self, key: SessionKey, run_id: str) -> bool:
        return bool(self._call(self._revoke, keys=[_prefix(key) + "runs"], args=[run_id, int(self.ttl * 1000)]))

    def delete(self, key: SessionKey) -> bool:
        prefix = _prefix(key)
        return bool(self._call(self._delete, keys=[*_keys(prefix), prefix + "events"], args=[prefix]))

    # -- event logs -------------------------------------------------------------------------

    def append_events(self, key: SessionKey, run_id: str, events: Sequence[tuple[str, dict[str, Any]]]) -> int:
        """One Lua call."""
        check_run_id(run_id)
        args: list[Any] = [int(self.events_ttl * 1000), run_id]
        for row in encode_events(events):
            args.extend(row)
        return int(self._call(self._append_events, keys=[events_key(key, run_id), _prefix(key) + "events"], args=args))

    def read_events(self, key: SessionKey, run_id: str, *, after: int = 0, limit: int = 1000) -> list[Event]:
        """One ``XRANGE``."""
        check_run_id(run_id)
        if limit <= 0:
            return []
        with _translated():
            entries = self.client.xrange(events_key(key, run_id), min=f"{max(after, 0) + 1}-0", count=limit)
        return _events(entries)

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
        grace = self._options.get("SOCKET_TIMEOUT") or 5.0
        try:
            client = await self._async_client()
            async with asyncio.timeout(max(timeout, 0) + grace):
                reply = await client.xread({events_key(key, run_id): f"{max(after, 0)}-0"}, count=limit, block=block)
        except TimeoutError as exc:
            raise StoreUnavailable(f"redis: XREAD did not answer within {max(timeout, 0) + grace:.1f}s") from exc
        except redis.ConnectionError:  # no connection for us (or none at all: then the polls raise)
            remaining = max(0.0, timeout - (loop.time() - started))
            return await super().wait_events(key, run_id, after=after, timeout=remaining, limit=limit)
        except redis.TimeoutError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        except redis.RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc
        return _events(reply[0][1]) if reply else []  # [[stream, entries]]: one stream asked

    async def _async_client(self) -> redis.asyncio.Redis:
        """The running loop's asyncio client, made on first use from the store's URL and options;
        its socket timeout is left unset: an ``XREAD BLOCK`` outwaits any, and is bounded above."""
        loop = asyncio.get_running_loop()
        with self._async_lock:
            held = self._async_clients.get(loop)
            if held is not None:
                return held[0]
            options: dict[str, Any] = dict(self._options.get("CONNECTION_POOL_KWARGS", {}))
            if self._options.get("SOCKET_CONNECT_TIMEOUT"):
                options["socket_connect_timeout"] = self._options["SOCKET_CONNECT_TIMEOUT"]
            if self._options.get("PASSWORD"):
                options["password"] = self._options["PASSWORD"]
            client = redis.asyncio.Redis.from_url(self.url, **options)
            closer = _closed_with_loop(client)
            self._async_clients[loop] = (client, closer)
        await anext(closer)  # the loop now knows it, and closes it on shutdown
        return client

    def acquire(self, key: SessionKey, *, lease: float, wait: float) -> Lock:
        lock = _RedisLock(self, key, lease)
        delays = backoff_delays(wait)
        while True:
            with _translated():
                if self.client.set(lock.name, lock.token, nx=True, px=max(1, int(lease * 1000))):
                    return lock
            delay = next(delays, None)
            if delay is None:
                raise SessionBusy(f"session {key.session_id} is busy")
            time.sleep(delay)

    def ping(self) -> None:
        with _translated():
            self.client.ping()

    def close(self) -> None:
        if self._client is not None:
            self._client.connection_pool.disconnect()
        with self._async_lock:
            held = list(self._async_clients.items())
            self._async_clients.clear()
        for loop, (_, closer) in held:
            if loop.is_running():  # its own thread closes it; a stopped loop does on shutdown
                asyncio.run_coroutine_threadsafe(closer.aclose(), loop)
