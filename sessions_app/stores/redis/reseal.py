"""``RedisStore.reseal``: a session's messages and state values encrypted again under the first
key, a page at a time, each rewrite a compare-and-set in Lua (``LINDEX``/``HGET`` equal to what was
read, then ``LSET``/``HSET``), so a commit or a delete meanwhile is never overwritten."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sessions_app.stores.base import SessionKey
from sessions_app.stores.redis.client import prefix, translated

if TYPE_CHECKING:
    from sessions_app.stores.redis.store import RedisStore

#: Messages read and rewritten per round trip.
PAGE = 500

# KEYS: a list or a hash. ARGV: 'l' or 'h', then (index or field, what was read, the new value)...
_SWAP = """
local n, get, set = 0, 'LINDEX', 'LSET'
if ARGV[1] == 'h' then get, set = 'HGET', 'HSET' end
for i = 2, #ARGV, 3 do
  if redis.call(get, KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call(set, KEYS[1], ARGV[i], ARGV[i + 2])
    n = n + 1
  end
end
return n
"""


def reseal(store: RedisStore, key: SessionKey) -> int:
    at, client = prefix(key), store.client
    swap = client.register_script(_SWAP)
    count = 0
    start = 0
    while True:
        with translated():
            page = client.lrange(at + "msgs", start, start + PAGE - 1)
        count += _swap(store, swap, at + "msgs", "l", key, enumerate(page, start))
        if len(page) < PAGE:
            break
        start += PAGE
    with translated():
        scopes = client.smembers(at + "scopes")
    for scope in scopes:
        with translated():
            values = client.hgetall(at + "st:" + scope.decode())
        count += _swap(store, swap, at + "st:" + scope.decode(), "h", key, values.items())
    return count


def _swap(store: RedisStore, swap: Any, name: str, kind: str, key: SessionKey, read: Any) -> int:
    args: list[Any] = [kind]
    for at, stored in read:
        sealed = store.sealer.reseal(key, stored)
        if sealed is not None:
            args.extend((at, stored, sealed))
    return int(store.call(swap, keys=[name], args=args)) if len(args) > 1 else 0
