"""Budgets in process: a run that starts over a budget is refused (429 ``budget_exceeded`` with
``Retry-After`` until the window resets), whatever way it was asked for; a queued run whose tenant
went over meanwhile ends failed when a worker claims it; a schedule's firing is skipped. Use is
read from ``UsageDaily`` rows, written here as the runs' ends write them."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents_app.budgets.check import budget_check
from agents_app.models import Budget, ModelPrice, Run, Schedule, UsageDaily
from agents_app.runs import execute
from agents_app.runs.execute import Step
from agents_app.runs.submit import RunRequest, run_record
from agents_app.schedules.firing import schedule_fire

WORKER = "w-test@host"


def today() -> date:
    return datetime.now(UTC).date()


def used(tenant, tokens: tuple[int, int], *, day: date | None = None, agent: str = "echo", model: str = "") -> None:
    """What the runs' ends add to the tenant's usage (``usage.record``), on ``day`` (default today)."""
    UsageDaily.objects.create(
        tenant=tenant,
        day=day or today(),
        agent=agent,
        session_id=f"s-{UsageDaily.objects.count()}",
        model=model,
        runs=1,
        succeeded=1,
        prompt_tokens=tokens[0],
        completion_tokens=tokens[1],
    )


def next_midnight() -> datetime:
    return datetime.combine(today() + timedelta(days=1), time(), tzinfo=UTC)


def refused(answer, resets_at: datetime) -> None:
    assert answer.status_code == 429, answer.content
    body = answer.json()
    assert body["code"] == "budget_exceeded" and "budget" in body["detail"], body
    assert datetime.fromisoformat(body["resets_at"]) == resets_at
    retry_after = int(answer.headers["Retry-After"])
    seconds_left = (resets_at - timezone.now()).total_seconds()
    assert retry_after >= 1 and abs(retry_after - seconds_left) < 60


def test_a_run_over_the_daily_token_budget_is_refused_until_midnight_and_nothing_is_recorded(alice) -> None:
    Budget.objects.create(tenant=alice.tenant, period="day", max_tokens=100)
    used(alice.tenant, (60, 39))
    assert alice.post("/run", {"agent": "echo", "message": "hi", "session_id": "s"}).status_code == 200  # 99 < 100
    used(alice.tenant, (1, 0))  # 100: at the cap, the next run would go over it
    runs = Run.objects.count()
    refused(alice.post("/run", {"agent": "echo", "message": "hi", "session_id": "s"}), next_midnight())
    refused(alice.post("/run", {"agent": "echo", "message": "hi", "async": True}), next_midnight())
    refused(alice.post("/run", {"agent": "echo", "message": "hi", "stream": True}), next_midnight())
    refused(alice.post("/api/v1/chat", {"agent": "echo", "prompt": "hi", "session_id": "s"}), next_midnight())
    assert Run.objects.count() == runs  # nothing recorded, nothing queued


def test_yesterdays_use_and_another_tenants_do_not_count(alice, make_tenant) -> None:
    bob = make_tenant()
    Budget.objects.create(tenant=alice.tenant, period="day", max_tokens=100)
    used(alice.tenant, (500, 0), day=today() - timedelta(days=1))
    assert alice.post("/run", {"agent": "echo", "message": "hi"}).status_code == 200
    used(alice.tenant, (100, 0))
    refused(alice.post("/run", {"agent": "echo", "message": "hi"}), next_midnight())
    used(bob.tenant, (10_000, 0))
    assert bob.post("/run", {"agent": "echo", "message": "hi"}).status_code == 200  # bob has no budget
    Budget.objects.create(tenant=bob.tenant, period="day", max_tokens=20_000)
    assert bob.post("/run", {"agent": "echo", "message": "hi"}).status_code == 200  # alice's use is not his


def test_an_agents_budget_refuses_that_agent_only_and_counts_its_runs_only(alice) -> None:
    alice.post("/agents", {"name": "writer", "framework": "echo", "config": {}})
    Budget.objects.create(tenant=alice.tenant, agent="writer", period="day", max_tokens=100)
    used(alice.tenant, (1000, 0), agent="echo")  # another agent's use
    assert alice.post("/run", {"agent": "writer", "message": "hi"}).status_code == 200
    used(alice.tenant, (80, 20), agent="writer")
    refused(alice.post("/run", {"agent": "writer", "message": "hi"}), next_midnight())
    assert alice.post("/run", {"agent": "echo", "message": "hi"}).status_code == 200


def test_a_monthly_budget_counts_the_month_and_resets_on_the_first_of_the_next(alice) -> None:
    first = today().replace(day=1)
    next_month = datetime.combine((first + timedelta(days=32)).replace(day=1), time(), tzinfo=UTC)
    Budget.objects.create(tenant=alice.tenant, period="month", max_tokens=1000)
    used(alice.tenant, (5000, 0), day=first - timedelta(days=1))  # last month's
    used(alice.tenant, (600, 0), day=first)
    assert alice.post("/run", {"agent": "echo", "message": "hi"}).status_code == 200
    used(alice.tenant, (300, 100))
    refused(alice.post("/run", {"agent": "echo", "message": "hi"}), next_month)


def test_both_windows_over_wait_for_the_later_reset(alice) -> None:
    first = today().replace(day=1)
    next_month = datetime.combine((first + timedelta(days=32)).replace(day=1), time(), tzinfo=UTC)
    Budget.objects.create(tenant=alice.tenant, period="day", max_tokens=10)
    Budget.objects.create(tenant=alice.tenant, period="month", max_tokens=10)
    used(alice.tenant, (10, 0))
    refused(alice.post("/run", {"agent": "echo", "message": "hi"}), next_month)


def test_a_spend_budget_prices_use_as_get_usage_does(alice) -> None:
    ModelPrice.objects.create(model="small-1", prompt_per_million=2, completion_per_million=10)
    Budget.objects.create(tenant=alice.tenant, period="day", max_spend=Decimal("0.001"))
    used(alice.tenant, (10_000_000, 0), model="unpriced")  # a model without a price adds nothing
    used(alice.tenant, (200, 50), model="small-1")  # 0.0004 + 0.0005 = 0.0009
    assert alice.post("/run", {"agent": "echo", "message": "hi"}).status_code == 200
    usage = alice.get("/usage?group_by=model").json()["items"]
    costs = {item["key"]: item["cost"] for item in usage}
    assert costs == {"": 0.0, "small-1": pytest.approx(0.0009), "unpriced": None}
    used(alice.tenant, (50, 0), model="small-1")  # + 0.0001: 0.001, the cap
    refused(alice.post("/run", {"agent": "echo", "message": "hi"}), next_midnight())


def test_no_budget_no_refusal_and_one_query(alice, django_assert_num_queries) -> None:
    used(alice.tenant, (10**9, 10**9))
    assert alice.post("/run", {"agent": "echo", "message": "hi"}).status_code == 200
    with django_assert_num_queries(1):  # the select of its budgets, which finds none
        budget_check(tenant_id=alice.tenant.pk, agent="echo")


def test_a_queued_run_claimed_after_its_tenant_went_over_ends_failed(alice, django_capture_on_commit_callbacks) -> None:
    """Accepted under budget, a queued run does not spend past the cap: the worker that claims it
    ends it ``failed`` (``budget_exceeded``), without running it."""
    Budget.objects.create(tenant=alice.tenant, period="day", max_tokens=100)
    with django_capture_on_commit_callbacks(execute=True):
        run, _ = run_record(RunRequest("echo", "hi", session_id="q", mode="queued"), tenant=alice.tenant)
    used(alice.tenant, (100, 0))  # other runs ended meanwhile
    assert asyncio.run(execute.run_execute(run_id=str(run.pk), worker=WORKER)) is Step.DONE
    run.refresh_from_db()
    assert run.status == "failed" and run.error.startswith("budget_exceeded: ")
    assert (run.attempts, run.started_at, run.result) == (0, None, None)
    answer = alice.get(f"/runs/{run.pk}").json()
    assert answer["status"] == "failed" and answer["error"].startswith("budget_exceeded")


def test_a_queued_run_under_budget_runs(alice, django_capture_on_commit_callbacks) -> None:
    Budget.objects.create(tenant=alice.tenant, period="day", max_tokens=100)
    with django_capture_on_commit_callbacks(execute=True):
        run, _ = run_record(RunRequest("echo", "hi", session_id="q", mode="queued"), tenant=alice.tenant)
    used(alice.tenant, (99, 0))
    assert asyncio.run(execute.run_execute(run_id=str(run.pk), worker=WORKER)) is Step.DONE
    run.refresh_from_db()
    assert (run.status, run.result) == ("succeeded", "echo[turns=1]: hi")


def test_a_schedules_firing_over_budget_is_skipped_and_says_why(alice) -> None:
    alice.post("/schedules", {"agent": "echo", "message": "tick", "cron": "*/5 * * * *"})
    schedule = Schedule.objects.get(tenant=alice.tenant)
    Budget.objects.create(tenant=alice.tenant, period="day", max_tokens=100)
    used(alice.tenant, (100, 0))
    due = schedule.next_run_at
    assert schedule_fire(schedule_id=schedule.pk, due=due, now=due + timedelta(seconds=1)) is None
    schedule.refresh_from_db()
    assert "budget" in schedule.last_error and schedule.next_run_at > due
    assert not Run.objects.filter(schedule=schedule).exists()


def test_an_idempotent_replay_is_answered_over_budget(alice) -> None:
    """The run was made under budget: sending the same request again answers it, runs nothing."""
    Budget.objects.create(tenant=alice.tenant, period="day", max_tokens=100)
    first = alice.post("/run", {"agent": "echo", "message": "hi"}, HTTP_IDEMPOTENCY_KEY="k-1")
    used(alice.tenant, (100, 0))
    again = alice.post("/run", {"agent": "echo", "message": "hi"}, HTTP_IDEMPOTENCY_KEY="k-1")
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["run_id"] == first.json()["run_id"]


def test_a_budget_without_a_cap_or_twice_for_one_scope_is_refused_by_the_database(alice) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Budget.objects.create(tenant=alice.tenant, period="day")
    Budget.objects.create(tenant=alice.tenant, period="day", max_tokens=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Budget.objects.create(tenant=alice.tenant, period="day", max_spend=1)
    Budget.objects.create(tenant=alice.tenant, agent="echo", period="day", max_tokens=1)  # another scope
