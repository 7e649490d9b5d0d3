"""Budget alerts in process: runs of an agent on the project's model server (its tokens reported)
cross 80 % and then 100 % of a budget; each crossing is logged once and recorded once per window,
and POSTed, signed, to the budget's webhook."""

from __future__ import annotations

import json
import logging

import pytest

from agents_app.budgets.alerts import budget_alert_deliver
from agents_app.models import Budget, BudgetAlert, ModelPrice
from agents_app.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, webhook_verify
from infra.logs import JsonFormatter
from tests.live.test_webhooks_and_broker import Receiver

LOGGER = "agents_app.budgets.alerts"


@pytest.fixture
def writer(alice, model_server):
    """``writer(prompt, completion)``: one run of the ``writer`` agent whose model reports these tokens."""
    config = {"base_url": model_server.url, "model": "small-1"}
    assert alice.post("/agents", {"name": "writer", "framework": "openai_chat", "config": config}).status_code == 201

    def run(prompt: int, completion: int):
        model_server.reply("written", usage=(prompt, completion))
        return alice.post("/run", {"agent": "writer", "message": "write", "session_id": "s"})

    return run


def alerts_logged(caplog) -> list[dict]:
    return [record.event for record in caplog.records if record.name == LOGGER and record.levelname == "WARNING"]


def test_alerts_fire_once_at_80_and_once_at_100_percent(alice, writer, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    budget = Budget.objects.create(tenant=alice.tenant, period="day", max_tokens=1000)
    assert writer(500, 200).status_code == 200  # 70 %
    assert alerts_logged(caplog) == []
    assert writer(100, 50).status_code == 200  # 85 %: crossed 80
    assert writer(50, 0).status_code == 200  # 90 %: nothing new
    assert writer(100, 0).status_code == 200  # 100 %: crossed 100 (and now used up)
    refused = writer(1, 1)
    assert refused.status_code == 429 and refused.json()["code"] == "budget_exceeded"
    events = alerts_logged(caplog)
    assert [(e["threshold"], e["used_tokens"]) for e in events] == [(80, 850), (100, 1000)]
    assert events[0]["tenant"] == alice.tenant.slug and events[0]["event"] == "budget.threshold"
    assert events[0]["budget"] == {
        "id": budget.pk,
        "scope": "tenant",
        "agent": None,
        "period": "day",
        "max_tokens": 1000,
        "max_spend": None,
    }
    record = next(r for r in caplog.records if r.name == LOGGER)
    line = json.loads(JsonFormatter().format(record))  # AK_LOG_FORMAT=json: the event as it is
    assert line["level"] == "WARNING" and line["tenant"] == alice.tenant.slug and line["event"] == events[0]
    rows = BudgetAlert.objects.filter(budget=budget).order_by("threshold")
    assert [(a.threshold, a.used_tokens, a.webhook_status) for a in rows] == [(80, 850, "none"), (100, 1000, "none")]


def test_a_run_that_jumps_past_both_alerts_both_once(alice, writer, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    ModelPrice.objects.create(model="small-1", prompt_per_million=1000, completion_per_million=1000)
    budget = Budget.objects.create(tenant=alice.tenant, agent="writer", period="month", max_spend="0.5")
    assert writer(400, 200).status_code == 200  # 0.6: 120 % of the spend cap
    assert [(e["threshold"], e["used_spend"]) for e in alerts_logged(caplog)] == [(80, 0.6), (100, 0.6)]
    assert alerts_logged(caplog)[0]["budget"]["scope"] == "agent"
    assert BudgetAlert.objects.filter(budget=budget).count() == 2
    assert alice.post("/run", {"agent": "echo", "message": "hi"}).status_code == 200  # another agent's runs go on


def test_a_cap_changed_in_the_window_re_arms_its_alerts(alice, writer, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    budget = Budget.objects.create(tenant=alice.tenant, period="day", max_tokens=100)
    assert writer(100, 0).status_code == 200  # 100 %: both alerts
    budget.max_tokens = 1000  # the operator raises the cap: 10 % used
    budget.save()
    assert writer(600, 0).status_code == 200  # 70 %: nothing
    assert writer(100, 0).status_code == 200  # 80 % of the new cap: alerted again
    assert writer(100, 0).status_code == 200  # 90 %: nothing new
    events = alerts_logged(caplog)
    assert [(e["threshold"], e["budget"]["max_tokens"], e["used_tokens"]) for e in events] == [
        (80, 100, 100),
        (100, 100, 100),
        (80, 1000, 800),
    ]
    caps = BudgetAlert.objects.filter(budget=budget).order_by("created_at").values_list("threshold", "caps")
    assert list(caps) == [(80, "100 tokens, - spend"), (100, "100 tokens, - spend"), (80, "1000 tokens, - spend")]


def test_runs_without_tokens_and_tenants_without_budgets_alert_nothing(alice, writer, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    assert writer(5000, 5000).status_code == 200  # no budget
    Budget.objects.create(tenant=alice.tenant, period="day", max_tokens=1)
    assert alice.post("/run", {"agent": "echo", "message": "hi"}).status_code == 429  # over, from the run above
    assert alerts_logged(caplog) == [] and not BudgetAlert.objects.exists()  # no run ended with tokens since


def test_an_alert_is_posted_signed_to_the_budgets_webhook_and_retried(alice, writer, settings) -> None:
    settings.AK_RUN = {**settings.AK_RUN, "WEBHOOK_MAX_ATTEMPTS": 2}
    receiver = Receiver(failures=1)
    try:
        Budget.objects.create(tenant=alice.tenant, period="day", max_tokens=100, alert_webhook_url=receiver.url)
        assert writer(50, 35).status_code == 200  # 85 %
        alert = BudgetAlert.objects.get()
        assert alert.webhook_status == "pending"
        first = budget_alert_deliver(alert_id=alert.pk)  # what the worker's task does
        assert first.status == "retrying" and first.retry_in > 0
        assert budget_alert_deliver(alert_id=alert.pk).status == "delivered"
        assert budget_alert_deliver(alert_id=alert.pk).status == "nothing to do"  # never twice
    finally:
        receiver.close()
    alert.refresh_from_db()
    assert (alert.webhook_status, alert.webhook_attempts) == ("delivered", 2)
    headers, body = receiver.calls[-1]
    secret = alice.tenant.webhook_secret
    assert webhook_verify(
        secret=secret, timestamp=headers[TIMESTAMP_HEADER], body=body, signature=headers[SIGNATURE_HEADER]
    )
    assert headers["X-AK-Event"] == "budget.threshold"
    event = json.loads(body)
    assert (event["threshold"], event["used_tokens"], event["currency"]) == (80, 85, "USD")
    assert event["tenant"] == alice.tenant.slug and event["resets_at"].endswith("T00:00:00+00:00")


def test_an_alert_to_a_private_address_is_refused_when_they_are_not_allowed(alice, writer, settings) -> None:
    Budget.objects.create(tenant=alice.tenant, period="day", max_tokens=10, alert_webhook_url="http://127.0.0.1:9/h")
    assert writer(10, 0).status_code == 200
    settings.AK_RUN = {**settings.AK_RUN, "WEBHOOK_ALLOW_PRIVATE": False}
    alert = BudgetAlert.objects.get(threshold=100)
    assert budget_alert_deliver(alert_id=alert.pk).status == "refused"
    alert.refresh_from_db()
    assert alert.webhook_status == "failed" and "address" in alert.webhook_error
