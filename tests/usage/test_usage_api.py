"""GET /usage in process: runs of two agents on two models, against the project's model server,
add up exactly in every grouping; tenants see only their own; bad parameters are a 400 naming them."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest

from agents_app.models import ModelPrice, PricingSettings, Run, UsageDaily
from agents_app.runs.execute import run_execute
from agents_app.runs.submit import RunRequest, run_record
from tests.modelserver import ModelServer

#: (agent, model, session, prompt tokens, completion tokens) of each run.
RUNS = [
    ("writer", "small-1", "s-a", 100, 20),
    ("writer", "small-1", "s-a", 130, 25),
    ("writer", "small-1", "s-b", 90, 10),
    ("critic", "large-2", "s-a", 400, 80),
    ("critic", "large-2", "s-c", 350, 70),
]
PRICES = {"small-1": (Decimal("0.15"), Decimal("0.60")), "large-2": (Decimal("2.50"), Decimal("10.00"))}


def cost(model: str, prompt: int, completion: int) -> Decimal:
    prompt_price, completion_price = PRICES[model]
    return (prompt * prompt_price + completion * completion_price) / 1_000_000


def expected(key_of) -> dict[str, dict]:
    groups: dict[str, dict] = {}
    for run in RUNS:
        _, model, _, prompt, completion = run
        group = groups.setdefault(
            key_of(run),
            {"runs": 0, "succeeded": 0, "failed": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost": Decimal(0)},
        )
        group["runs"] += 1
        group["succeeded"] += 1
        group["prompt_tokens"] += prompt
        group["completion_tokens"] += completion
        group["cost"] += cost(model, prompt, completion)
    return groups


def run_all(tenant, server: ModelServer) -> None:
    for name, model in (("writer", "small-1"), ("critic", "large-2")):
        config = {"base_url": server.url, "model": model}
        assert tenant.post("/agents", {"name": name, "framework": "openai_chat", "config": config}).status_code == 201
    for agent, _, session, prompt, completion in RUNS:
        server.reply(f"{agent} says hi", usage=(prompt, completion))
        answer = tenant.post("/run", {"agent": agent, "message": "hello", "session_id": session})
        assert answer.status_code == 200, answer.json()


def usage(tenant, query: dict[str, str]):
    return tenant.get(f"/usage?{urlencode(query)}")


def set_prices() -> None:
    for model, (prompt, completion) in PRICES.items():
        ModelPrice.objects.create(model=model, prompt_per_million=prompt, completion_per_million=completion)


@pytest.mark.parametrize(
    ("group_by", "key_of"),
    [
        ("agent", lambda run: run[0]),
        ("model", lambda run: run[1]),
        ("session", lambda run: run[2]),
        ("day", lambda run: datetime.now(UTC).date().isoformat()),
    ],
)
def test_usage_adds_up_exactly_in_every_grouping(alice, model_server, group_by, key_of) -> None:
    set_prices()
    run_all(alice, model_server)
    answer = usage(alice, {"group_by": group_by})
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    want = expected(key_of)
    assert [item["key"] for item in body["items"]] == sorted(want)
    for item in body["items"]:
        group = want[item["key"]]
        assert {name: item[name] for name in group if name != "cost"} == {
            name: value for name, value in group.items() if name != "cost"
        }
        assert Decimal(str(item["cost"])) == group["cost"]
    total = body["total"]
    assert set(total) == {"runs", "succeeded", "failed", "prompt_tokens", "completion_tokens", "cost"}
    assert (total["runs"], total["prompt_tokens"], total["completion_tokens"]) == (5, 1070, 205)
    assert Decimal(str(total["cost"])) == sum(cost(m, p, c) for _, m, _, p, c in RUNS)
    assert Run.objects.filter(agent__name="critic").values_list("model", flat=True).distinct().get() == "large-2"


def test_a_price_edit_applies_to_past_usage_and_no_price_is_null(alice, model_server) -> None:
    run_all(alice, model_server)
    body = usage(alice, {"group_by": "model"}).json()
    assert [item["cost"] for item in body["items"]] == [None, None] and body["total"]["cost"] is None
    ModelPrice.objects.create(model="small-1", prompt_per_million=1, completion_per_million=2)
    body = usage(alice, {"group_by": "model"}).json()
    small = (100 + 130 + 90) * 1 + (20 + 25 + 10) * 2
    assert [item["cost"] for item in body["items"]] == [None, pytest.approx(small / 1e6)]
    assert body["total"]["cost"] is None  # a partial sum is not the spend
    assert PricingSettings.current().currency == "USD"


def test_failed_runs_count_and_echo_costs_nothing(alice, model_server) -> None:
    config = {"base_url": model_server.url, "model": "small-1"}
    alice.post("/agents", {"name": "writer", "framework": "openai_chat", "config": config})
    model_server.fail(500)
    assert alice.post("/run", {"agent": "writer", "message": "hi"}).status_code == 502
    assert alice.post("/run", {"agent": "echo", "message": "hi"}).status_code == 200
    body = usage(alice, {"group_by": "model"}).json()
    assert body["items"] == [
        {"key": "", "runs": 1, "succeeded": 1, "failed": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0},
        {"key": "small-1", "runs": 1, "succeeded": 0, "failed": 1, "prompt_tokens": 0, "completion_tokens": 0,
         "cost": 0.0},
    ]  # fmt: skip


def test_a_tenant_sees_only_its_own_usage(alice, make_tenant, model_server) -> None:
    bob = make_tenant()
    run_all(alice, model_server)
    assert bob.post("/run", {"agent": "echo", "message": "hi", "session_id": "s-a"}).status_code == 200
    body = usage(bob, {"group_by": "session"}).json()
    assert [(item["key"], item["runs"], item["prompt_tokens"]) for item in body["items"]] == [("s-a", 1, 0)]
    assert body["total"]["runs"] == 1
    assert UsageDaily.objects.filter(tenant=alice.tenant).count() == 4  # writer and critic, 2 sessions each


def test_the_window_is_of_days_both_included(alice) -> None:
    assert alice.post("/run", {"agent": "echo", "message": "hi"}).status_code == 200
    today = datetime.now(UTC).date()
    yesterday = (today - timedelta(days=1)).isoformat()
    assert usage(alice, {"since": today.isoformat(), "until": today.isoformat()}).json()["total"]["runs"] == 1
    assert usage(alice, {"until": yesterday}).json() == {
        "items": [],
        "total": {"runs": 0, "succeeded": 0, "failed": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0},
    }


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"group_by": "week"}, "group_by"),
        ({"group_by": ""}, "group_by"),
        ({"since": "yesterday"}, "since"),
        ({"since": "20261201"}, "since"),
        ({"until": "2026-02-30"}, "until"),
        ({"until": ""}, "until"),
        ({"since": "2026-12-02", "until": "2026-12-01"}, "since"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(alice, query, param) -> None:
    answer = usage(alice, query)
    assert answer.status_code == 400
    assert set(answer.json()["fields"]) == {param}


def test_usage_needs_a_key(client) -> None:
    assert client.get("/usage").status_code == 401


def _model_changed(tenant, server: ModelServer, model: str) -> None:
    config = {"base_url": server.url, "model": model}
    assert tenant.client.patch("/agents/writer", {"config": config}, format="json").status_code == 200


def _usage_models(tenant) -> list[tuple[str, int]]:
    return [(item["key"], item["prompt_tokens"]) for item in usage(tenant, {"group_by": "model"}).json()["items"]]


def test_an_agent_changed_mid_run_leaves_the_runs_tokens_on_the_model_it_used(alice, model_server) -> None:
    """A sync run's tokens stay on the model its adapter called, whatever its agent says when it ends."""
    config = {"base_url": model_server.url, "model": "large-2"}
    assert alice.post("/agents", {"name": "writer", "framework": "openai_chat", "config": config}).status_code == 201
    model_server.reply("slow", usage=(400, 80), delay=1.5)
    with ThreadPoolExecutor(max_workers=1) as pool:
        answer = pool.submit(alice.post, "/run", {"agent": "writer", "message": "hi"})
        model_server.wait_for(1)
        _model_changed(alice, model_server, "small-1")  # while the model answers
        assert answer.result().status_code == 200
    assert model_server.last.body["model"] == "large-2"
    assert Run.objects.get(agent__name="writer").model == "large-2"
    assert _usage_models(alice) == [("large-2", 400)]


def test_a_queued_run_is_counted_on_the_model_its_agent_names_when_it_starts(alice, model_server) -> None:
    """Changed while queued: the new model runs it and counts it; changed while it runs: no move."""
    config = {"base_url": model_server.url, "model": "large-2"}
    assert alice.post("/agents", {"name": "writer", "framework": "openai_chat", "config": config}).status_code == 201
    run = run_record(RunRequest("writer", "hi", mode="queued"), tenant=alice.tenant)[0]
    assert Run.objects.get(pk=run.pk).model == "large-2"  # as made
    _model_changed(alice, model_server, "small-1")  # before a worker takes it
    model_server.reply("slow", usage=(100, 20), delay=1.5)
    with ThreadPoolExecutor(max_workers=1) as pool:
        executed = pool.submit(asyncio.run, run_execute(run_id=str(run.pk), worker="w@test:1"))
        model_server.wait_for(1)
        _model_changed(alice, model_server, "large-2")  # while the model answers
        executed.result()
    assert model_server.last.body["model"] == "small-1"
    assert Run.objects.get(pk=run.pk).model == "small-1"
    assert _usage_models(alice) == [("small-1", 100)]
