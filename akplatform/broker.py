"""The Redis broker transport: kombu's, keeping one client per connection pool.

kombu's Redis channel makes a new ``redis.Redis`` for every command it sends outside its
consumer's own connection: each task published (a web process's ``POST /run``) and each task
acked (a worker's main process, once per run with late acks). Building one fills two tables of
~80 response callbacks (redis-py issue #3624): ~70 µs of CPU, more than the ``LPUSH`` it then
sends. A ``redis.Redis`` is only a handle on its connection pool, and safe to share between
threads (every command takes a connection from the pool and gives it back), so this channel
keeps one per pool and makes a new one only when the pool is new (after a fork, kombu drops its
pools). Everything else is kombu's own.

Used for ``redis://`` broker URLs (``CELERY_BROKER_TRANSPORT`` in the settings).
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _shared_client: tuple[redis.ConnectionPool, Any] | None = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:  # the consumer's client: kombu builds it once and caches it
            return super()._create_client(asynchronous=True)
        pool = self.pool
        shared = self._shared_client
        if shared is None or shared[0] is not pool:
            shared = self._shared_client = (pool, super()._create_client())
        return shared[1]


class Transport(kombu_redis.Transport):
    Channel = Channel
