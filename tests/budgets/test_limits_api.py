"""GET /limits: the tenant's limits with their use, counted as the checks count it, and its
budgets with their use in the current window; another tenant's are never seen."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from rest_framework.test import APIClient

from agents_app.models import Budget, ModelPrice, UsageDaily

LIMITS = {"agents", "secrets", "sessions", "schedules", "concurrent_runs", "event_streams"}


def today() -> date:
    return datetime.now(UTC).date()


def test_limits_and_their_use(alice, make_tenant, settings) -> None:
    settings.AK_LIMITS = {**settings.AK_LIMITS, "AGENTS": 5, "EVENT_STREAMS": 0, "SECRETS": 0}
    alice.tenant.limit_sessions = 7
    alice.tenant.save()
    bob = make_tenant()
    for client in (alice, bob, bob):
        name = f"a{len(client.get('/agents').json())}"
        assert client.post("/agents", {"name": name, "framework": "echo", "config": {}}).status_code == 201
    alice.post("/secrets", {"name": "k", "value": "v"})
    for session_id in ("s1", "s2", "s1"):
        assert alice.post("/run", {"agent": "echo", "message": "hi", "session_id": session_id}).status_code == 200
    alice.post("/schedules", {"agent": "echo", "message": "tick", "cron": "0 * * * *"})

    answer = alice.get("/limits")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert set(body) == {"limits", "budgets"} and set(body["limits"]) == LIMITS
    limits = body["limits"]
    assert limits["agents"] == {"limit": 5, "used": 1}  # the built-in echo does not count; bob's neither
    assert limits["secrets"] == {"limit": 0, "used": 1}  # 0: unlimited
    assert limits["sessions"] == {"limit": 7, "used": 2}  # the tenant's own limit
    assert limits["schedules"]["used"] == 1
    assert limits["concurrent_runs"]["used"] == 0
    assert limits["event_streams"] == {"limit": 0, "used": None}  # not counted without a limit
    assert body["budgets"] == []
    assert bob.get("/limits").json()["limits"]["agents"]["used"] == 2


def test_budgets_with_their_use_in_the_current_window(alice, make_tenant) -> None:
    bob = make_tenant()
    ModelPrice.objects.create(model="m", prompt_per_million=1, completion_per_million=3)
    Budget.objects.create(tenant=alice.tenant, period="day", max_tokens=1000, max_spend=Decimal("1.5"))
    Budget.objects.create(tenant=alice.tenant, agent="echo", period="month", max_spend=Decimal("0.01"))
    Budget.objects.create(tenant=bob.tenant, period="day", max_tokens=1)
    first = today().replace(day=1)
    rows = [(alice.tenant, today(), "echo", 100, 20), (alice.tenant, today(), "writer", 1000, 0)]
    rows += [(alice.tenant, today() - timedelta(days=40), "echo", 10**6, 0), (bob.tenant, today(), "echo", 5, 5)]
    for index, (tenant, day, agent, prompt, completion) in enumerate(rows):
        UsageDaily.objects.create(
            tenant=tenant, day=day, agent=agent, session_id=f"s{index}", model="m", runs=1,
            prompt_tokens=prompt, completion_tokens=completion,
        )  # fmt: skip
    body = alice.get("/limits").json()
    tomorrow = datetime.combine(today() + timedelta(days=1), time(), tzinfo=UTC)
    next_month = datetime.combine((first + timedelta(days=32)).replace(day=1), time(), tzinfo=UTC)
    assert [b["scope"] for b in body["budgets"]] == ["tenant", "agent"]
    tenant_day, echo_month = body["budgets"]
    assert {k: v for k, v in tenant_day.items() if k != "resets_at"} == {
        "scope": "tenant",
        "agent": None,
        "period": "day",
        "max_tokens": 1000,
        "max_spend": 1.5,
        "used_tokens": 1120,
        "used_spend": 0.00116,  # (100 + 1000) * 1e-6 + 20 * 3e-6
        "currency": "USD",
        "exceeded": True,
        "window_start": today().isoformat(),
    }
    assert datetime.fromisoformat(tenant_day["resets_at"]) == tomorrow
    assert (echo_month["agent"], echo_month["period"], echo_month["max_tokens"]) == ("echo", "month", None)
    assert (echo_month["used_tokens"], echo_month["exceeded"]) == (120, False)  # echo's, this month's only
    assert echo_month["window_start"] == first.isoformat()
    assert datetime.fromisoformat(echo_month["resets_at"]) == next_month
    assert [b["max_tokens"] for b in bob.get("/limits").json()["budgets"]] == [1]


def test_limits_needs_a_key_and_is_in_the_openapi_document(db) -> None:
    assert APIClient().get("/limits").status_code == 401
    document = APIClient().get("/api/schema/", {"format": "json"}).json()
    operation = document["paths"]["/limits"]["get"]
    assert operation["operationId"] == "limits" and {"200", "401", "429"} <= set(operation["responses"])
    schema = document["components"]["schemas"]["BudgetUseOutput"]["properties"]
    assert {"scope", "period", "max_tokens", "max_spend", "used_tokens", "used_spend", "currency", "resets_at"} <= set(
        schema
    )
    errors = document["components"]["schemas"]["ErrorOutput"]["properties"]
    assert "resets_at" in errors
