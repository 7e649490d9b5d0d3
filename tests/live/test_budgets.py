"""Budgets on the platform as deployed (gunicorn, a Celery worker, Redis): a tenant whose runs
(sync and through the worker, against the project's model server) used up its daily budget gets
429 ``budget_exceeded`` with ``Retry-After`` until midnight UTC, and another tenant is not
affected; the crossings of 80 % and 100 % are POSTed, signed, once each, by the worker."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from agents_app.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, webhook_verify
from tests.live.queue import Queue
from tests.live.servers import manage
from tests.live.test_webhooks_and_broker import Receiver
from tests.modelserver import ModelServer

pytestmark = pytest.mark.slow

SET_BUDGET = """
from agents_app.models import Budget
from sessions_app.models import Tenant
tenant = Tenant.objects.get(slug={slug!r})
Budget.objects.create(tenant=tenant, period="day", max_tokens=1000, alert_webhook_url={url!r})
"""


def test_a_tenant_over_its_daily_budget_is_refused_and_another_is_not(start_queue, model_server: ModelServer) -> None:
    queue: Queue = start_queue("redis", workers=1)
    other_key = manage(queue.platform.env, "create_tenant", f"other-{uuid.uuid4().hex[:6]}").strip().splitlines()[-1]
    other = Queue(replace(queue.platform, key=other_key), {}, queue.invocations, queue.tmp)  # same platform
    receiver = Receiver(failures=0)
    try:
        manage(queue.platform.env, "shell", "-c", SET_BUDGET.format(slug=queue.platform.tenant, url=receiver.url))
        for tenant in (queue, other):
            config = {"base_url": model_server.url, "model": "budget-model"}
            answer = tenant.post("/agents", {"name": "writer", "framework": "openai_chat", "config": config})
            assert answer.status_code == 201, answer.text

        model_server.reply("first", usage=(600, 250))  # 850 of 1000: crosses 80 %
        answer = queue.post("/run", {"agent": "writer", "message": "one", "session_id": "b-1"})
        assert answer.status_code == 200, answer.text
        model_server.reply("second", usage=(100, 50))  # 1000: crosses 100 %, through the worker
        assert queue.finished(queue.enqueue("writer", "two", "b-1")["run_id"])["status"] == "succeeded"

        for body in (
            {"agent": "writer", "message": "three", "session_id": "b-1"},
            {"agent": "echo", "message": "three"},  # the tenant's budget counts every agent
            {"agent": "writer", "message": "three", "async": True},
        ):
            refused = queue.post("/run", body)
            assert refused.status_code == 429, refused.text
            assert refused.json()["code"] == "budget_exceeded"
            midnight = datetime.fromisoformat(refused.json()["resets_at"])
            assert midnight.time() == datetime.min.time() and midnight.date() == datetime.now(UTC).date() + timedelta(1)
            assert 0 < int(refused.headers["Retry-After"]) <= 86400

        limits = queue.get("/limits").json()
        (budget,) = limits["budgets"]
        assert (budget["used_tokens"], budget["max_tokens"], budget["exceeded"]) == (1000, 1000, True)

        model_server.reply("theirs", usage=(5000, 5000))
        assert other.post("/run", {"agent": "writer", "message": "hi", "session_id": "o-1"}).status_code == 200
        model_server.reply("theirs again", usage=(5000, 5000))
        assert other.finished(other.enqueue("writer", "hi", "o-1")["run_id"])["status"] == "succeeded"
        assert other.get("/limits").json()["budgets"] == []

        deadline = time.monotonic() + 30
        while len(receiver.calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # nothing more comes
    finally:
        receiver.close()
    events = [json.loads(body) for _, body in receiver.calls]
    assert sorted((e["threshold"], e["used_tokens"]) for e in events) == [(80, 850), (100, 1000)]
    assert {e["tenant"] for e in events} == {queue.platform.tenant}
    for headers, body in receiver.calls:
        stamp, signature = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
        assert webhook_verify(secret=queue.platform.webhook_secret, timestamp=stamp, body=body, signature=signature)
