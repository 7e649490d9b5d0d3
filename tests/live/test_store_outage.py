"""A Redis the test owns is stopped mid-test: 503s, nothing lost, and runs go on once it is back."""

from __future__ import annotations

import time

import pytest
import redis
import requests

from tests import services

OPERATOR_TOKEN = "live-metrics-token-0123456789abcdef0123"  # /health says which dependency to it


@pytest.fixture
def owned_redis(tmp_path):
    if services.redis_server_binary() is None:
        pytest.fail("redis-server is needed for this test: `make test` installs it")
    server = services.redis_server(tmp_path / "redis", persistent=True).start()
    yield server
    server.stop()


def _answering(port: int, timeout: float = 20.0) -> None:
    """Until the Redis on ``port`` answers PING (a restarted one refuses commands while loading)."""
    client = redis.Redis(port=port, socket_timeout=2)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            client.close()


@pytest.mark.slow
def test_runs_answer_503_while_redis_is_down_and_lose_nothing(owned_redis, start_platform, tmp_path) -> None:
    platform = start_platform(  # fresh: over a Redis of its own, which it stops and starts
        fresh=True,
        env={
            "AK_SESSION__TYPE": "redis",
            "AK_SESSION__REDIS__URL": f"redis://127.0.0.1:{owned_redis.port}/0",
            "AK_SESSION__REDIS__CONNECT_TIMEOUT": "0.5",
            "AK_METRICS__TOKEN": OPERATOR_TOKEN,
        },
    )
    headers = {"Authorization": f"Bearer {platform.key}"}

    def run(message: str) -> requests.Response:
        body = {"agent": "echo", "message": message, "session_id": "outage"}
        return requests.post(f"{platform.url}/run", json=body, headers=headers, timeout=30)

    def messages() -> list[str]:
        response = requests.get(f"{platform.url}/sessions/outage/messages", headers=headers, timeout=30)
        return [m["content"] for m in response.json()["messages"]]

    assert run("before").json()["result"] == "echo[turns=1]: before"
    assert requests.get(f"{platform.url}/health", timeout=30).status_code == 200

    owned_redis.stop()  # SIGTERM: redis flushes its append-only file and exits
    down = run("during")
    assert down.status_code == 503
    assert down.json()["code"] == "store_unavailable"
    health = requests.get(f"{platform.url}/health", timeout=30)
    assert health.status_code == 503 and health.json() == {"status": "unavailable"}
    detail = requests.get(f"{platform.url}/health", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}, timeout=30)
    assert detail.json()["failing"] == ["store"]
    history = requests.get(f"{platform.url}/sessions/outage/messages", headers=headers, timeout=30)
    assert history.status_code == 503

    owned_redis.start()
    _answering(owned_redis.port)  # it listens before it has read its append-only file back
    health = requests.get(f"{platform.url}/health", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}, timeout=30)
    assert health.status_code == 200, health.text
    assert messages() == ["before", "echo[turns=1]: before"]
    assert run("after").json()["result"] == "echo[turns=2]: after"
    assert messages() == ["before", "echo[turns=1]: before", "after", "echo[turns=2]: after"]
