"""Firing schedules with a controlled clock: the cron arithmetic (time zones, daylight saving
time), one run per due time, one run after downtime, nothing after a delete or for a deleted
agent. (The live tests fire them with real beat and worker processes.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from agents_app.models import Run, Schedule
from agents_app.schedules import timing
from agents_app.schedules.firing import schedules_fire
from agents_app.schedules.services import schedule_create, schedule_delete
from agents_app.services import agent_create, agent_delete

PARIS = ZoneInfo("Europe/Paris")


def test_cron_is_read_in_its_time_zone_across_daylight_saving_time() -> None:
    # 2026-03-29: Paris goes from 02:00 to 03:00 (UTC+1 to UTC+2).
    before = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    first = timing.cron_next("0 9 * * *", "Europe/Paris", before)
    second = timing.cron_next("0 9 * * *", "Europe/Paris", first)
    assert first == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)  # 09:00 CEST
    assert first.astimezone(PARIS).hour == second.astimezone(PARIS).hour == 9
    assert second - first == timedelta(hours=24)
    # A time the change skips fires at the first minute that exists.
    skipped = timing.cron_next("30 2 * * *", "Europe/Paris", datetime(2026, 3, 28, 23, 0, tzinfo=UTC))
    assert skipped.astimezone(PARIS).date().day == 29 and skipped.astimezone(PARIS).hour == 3
    assert timing.cron_next("*/5 * * * *", "UTC", datetime(2026, 1, 1, 0, 7, tzinfo=UTC)).minute == 10


def _schedule(alice, **fields: object) -> Schedule:
    return schedule_create(tenant=alice.tenant, agent="echo", message="tick", **fields)


def _runs(schedule: Schedule) -> list[Run]:
    return list(Run.objects.filter(schedule=schedule).order_by("created_at"))


def test_each_due_time_makes_one_queued_run(alice) -> None:
    made = _schedule(alice, cron="*/5 * * * *", time_zone="Europe/Paris", webhook_url="https://example.com/hook")
    due = made.next_run_at
    assert schedules_fire(now=due - timedelta(seconds=1)) == 0
    assert schedules_fire(now=due) == 1
    assert schedules_fire(now=due) == 0  # the same due time, seen again (another beat)
    assert schedules_fire(now=due + timedelta(seconds=30)) == 0
    [run] = _runs(made)
    assert (run.status, run.is_async, run.message, run.agent.name) == ("queued", True, "tick", "echo")
    assert (run.webhook_url, run.webhook_status) == ("https://example.com/hook", "pending")
    made.refresh_from_db()
    assert made.next_run_at == due + timedelta(minutes=5) and made.last_fired_at == due
    assert schedules_fire(now=due + timedelta(minutes=5)) == 1
    assert len(_runs(made)) == 2


def test_after_downtime_one_missed_firing_runs_not_a_flood(alice) -> None:
    made = _schedule(alice, cron="* * * * *")
    due = made.next_run_at
    later = due + timedelta(hours=3, seconds=20)  # 180 due times went by
    assert schedules_fire(now=later) == 1
    assert schedules_fire(now=later) == 0
    made.refresh_from_db()
    assert made.next_run_at == later.replace(second=0) + timedelta(minutes=1)  # the first one after now


def test_a_one_time_schedule_fires_once_on_its_session(alice) -> None:
    at = datetime.now(UTC) + timedelta(minutes=10)
    made = _schedule(alice, at=at, session_id="fixed")
    assert made.next_run_at == at
    assert schedules_fire(now=at + timedelta(days=1)) == 1
    assert schedules_fire(now=at + timedelta(days=2)) == 0
    made.refresh_from_db()
    assert made.next_run_at is None and made.enabled
    [run] = _runs(made)
    assert run.session.session_id == "fixed" and run.session.tenant_id == alice.tenant.pk


def test_a_deleted_or_disabled_schedule_does_not_fire(alice) -> None:
    gone, off = _schedule(alice, cron="* * * * *"), _schedule(alice, cron="* * * * *", enabled=False)
    due = gone.next_run_at
    assert off.next_run_at is None
    schedule_delete(schedule=gone)
    assert schedules_fire(now=due + timedelta(minutes=1)) == 0
    assert not Run.objects.filter(tenant=alice.tenant).exists()


def test_a_schedule_whose_agent_was_deleted_is_disabled_saying_why(alice) -> None:
    agent_create(tenant=alice.tenant, name="temp", framework="echo", config={})
    made = schedule_create(tenant=alice.tenant, agent="temp", message="m", cron="* * * * *")
    agent_delete(agent=made.agent)
    assert schedules_fire(now=made.next_run_at) == 0
    made.refresh_from_db()
    assert not made.enabled and made.next_run_at is None and "deleted" in made.last_error
    assert not Run.objects.filter(tenant=alice.tenant).exists()


def test_the_runs_stay_when_the_schedule_goes(alice) -> None:
    made = _schedule(alice, cron="* * * * *")
    schedules_fire(now=made.next_run_at)
    [run] = _runs(made)
    schedule_delete(schedule=made)
    run.refresh_from_db()
    assert run.schedule_id is None and run.status == "queued"


def test_a_tenant_at_its_sessions_limit_skips_the_due_time_saying_why(alice, settings) -> None:
    settings.AK_LIMITS = {**settings.AK_LIMITS, "SESSIONS": 1}
    made = _schedule(alice, cron="* * * * *")  # a new session each firing
    due = made.next_run_at
    assert schedules_fire(now=due) == 1
    assert schedules_fire(now=due + timedelta(minutes=1)) == 0  # a second session is over the limit
    made.refresh_from_db()
    assert "limit of sessions" in made.last_error and made.enabled
    assert made.next_run_at == due + timedelta(minutes=2)  # skipped, not retried every second
    assert len(_runs(made)) == 1
