"""Webhooks to a receiver on loopback, and a broker that is down."""

from __future__ import annotations

import json
import threading
import uuid
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from agents_app.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, webhook_verify
from tests import services
from tests.live.queue import Queue

pytestmark = pytest.mark.slow

OPERATOR_TOKEN = "live-metrics-token-0123456789abcdef0123"  # /health says which dependency to it


class Receiver:
    """An HTTP endpoint that answers 500 to the first ``failures`` POSTs, then 204."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[Message, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((self.headers, body))  # case-insensitive
                self.send_response(500 if len(receiver.calls) <= receiver.failures else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()


def test_a_finished_run_is_posted_signed_and_retried(start_queue) -> None:
    queue: Queue = start_queue("redis", workers=1, env={"AK_RUN__WEBHOOK_RETRY": "0.2"})
    receiver = Receiver(failures=1)
    try:
        session_id = f"hook-{uuid.uuid4().hex[:6]}"
        run_id = queue.enqueue("echo", "ping", session_id, webhook=receiver.url)["run_id"]
        assert queue.finished(run_id)["status"] == "succeeded"
        run = queue.wait(run_id, lambda r: r["webhook_status"] == "delivered", timeout=30)
    finally:
        receiver.close()
    assert len(receiver.calls) == 2  # the first answer was a 500: tried again
    secret = queue.platform.webhook_secret
    for headers, body in receiver.calls:
        assert webhook_verify(
            secret=secret, timestamp=headers[TIMESTAMP_HEADER], body=body, signature=headers[SIGNATURE_HEADER]
        )
        assert not webhook_verify(
            secret="not-the-secret", timestamp=headers[TIMESTAMP_HEADER], body=body, signature=headers[SIGNATURE_HEADER]
        )
        payload = json.loads(body)
        assert (payload["run_id"], payload["status"], payload["result"]) == (run_id, "succeeded", "echo[turns=1]: ping")
    assert run["webhook_status"] == "delivered"


def test_a_webhook_needs_an_async_run_and_an_http_url(start_queue) -> None:
    queue: Queue = start_queue("redis", workers=1)
    sync = queue.post("/run", {"agent": "echo", "message": "x", "webhook": "http://127.0.0.1:9/hook"})
    assert sync.status_code == 400 and "webhook" in sync.json()["fields"]
    bad = queue.post("/run", {"agent": "echo", "message": "x", "async": True, "webhook": "file:///etc/passwd"})
    assert bad.status_code == 400 and "webhook" in bad.json()["fields"]


def test_broker_down_async_run_is_a_503_and_nothing_is_lost(start_platform, redis_url: str) -> None:
    dead_broker = f"redis://127.0.0.1:{services.free_port()}/0"
    platform = start_platform(
        {
            "AK_SESSION__TYPE": "redis",
            "AK_SESSION__REDIS__URL": redis_url,
            "CELERY_BROKER_URL": dead_broker,
            "AK_METRICS__TOKEN": OPERATOR_TOKEN,
        }
    )
    headers = {"Authorization": f"Bearer {platform.key}"}
    session_id = f"nobroker-{uuid.uuid4().hex[:6]}"
    body = {"agent": "echo", "message": "queued?", "session_id": session_id, "async": True}
    # Answered within the client's timeout (a publish that retried until the broker came back would not be).
    response = requests.post(f"{platform.url}/run", json=body, headers=headers, timeout=45)
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "broker_unavailable"
    health = requests.get(f"{platform.url}/health", timeout=30)
    assert health.status_code == 503 and health.json() == {"status": "unavailable"}
    detail = requests.get(f"{platform.url}/health", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}, timeout=30)
    assert detail.json()["failing"] == ["broker"]
    runs = requests.get(f"{platform.url}/sessions/{session_id}/runs", headers=headers, timeout=30).json()["runs"]
    assert [(r["status"], r["error"].startswith("broker unavailable")) for r in runs] == [("failed", True)]
    sync = requests.post(f"{platform.url}/run", json={**body, "async": False}, headers=headers, timeout=60)
    assert sync.status_code == 200 and sync.json()["result"] == "echo[turns=1]: queued?"  # sync runs go on
