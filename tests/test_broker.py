"""The Redis broker transport (``akplatform.broker``): kombu's, with one client per pool."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid

import pytest
from kombu import Connection

from akplatform.broker import Channel, Transport
from tests.services import ROOT


def test_a_redis_broker_url_picks_our_transport_and_others_do_not() -> None:
    code = "from django.conf import settings; print(getattr(settings, 'CELERY_BROKER_TRANSPORT', None))"
    picked = {}
    for url in ("redis://127.0.0.1:6379/0", "amqp://guest@127.0.0.1//", "filesystem://"):
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "akplatform.settings", "CELERY_BROKER_URL": url}
        out = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        picked[url.split(":")[0]] = out.strip()
    assert picked == {"redis": "akplatform.broker:Transport", "amqp": "None", "filesystem": "None"}


def test_messages_go_through_it_and_one_client_serves_every_command(redis_url: str) -> None:
    queue = f"test-broker-{uuid.uuid4().hex[:8]}"
    with Connection(redis_url, transport=Transport) as conn:
        channel = conn.default_channel
        assert isinstance(channel, Channel)
        client = channel._create_client()
        with conn.SimpleQueue(queue) as q:
            for n in range(3):
                q.put({"n": n})
            got = []
            for _ in range(3):
                message = q.get(timeout=5)
                got.append(message.payload["n"])
                message.ack()  # late acks, as the workers do: through the shared client
            assert sorted(got) == [0, 1, 2]
            with pytest.raises(q.Empty):
                q.get_nowait()
        assert channel._create_client() is client
        assert channel._create_client(asynchronous=True) is not client  # the consumer's own

        # Shared between threads, as a redis.Redis may be: each command takes a pooled connection.
        errors: list[BaseException] = []

        def publish() -> None:
            try:
                with conn.clone() as own, own.SimpleQueue(queue) as q:
                    for n in range(50):
                        q.put({"n": n})
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=publish) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with conn.SimpleQueue(queue) as q:
            assert q.qsize() == 200
            assert q.clear() == 200

        channel._disconnect_pools()  # what kombu does after a fork: new pool, so a new client
        fresh = channel._create_client()
        assert fresh is not client and fresh.connection_pool is channel.pool
        assert fresh.ping()
