"""Schedules in the console: made and changed through the form, checked as the API checks them,
each tenant's staff seeing only its tenant's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agents_app.models import Agent, Schedule
from agents_app.schedules.firing import schedules_fire
from agents_app.schedules.services import schedule_create

LIST = "/admin/agents_app/schedule/"
ADD = "/admin/agents_app/schedule/add/"


def change_url(schedule: Schedule) -> str:
    return f"/admin/agents_app/schedule/{schedule.pk}/change/"


def _form(tenant, **fields: object) -> dict[str, object]:
    echo = Agent.objects.get(tenant=tenant, name="echo")
    base = {"agent": echo.pk, "message": "daily report", "session_id": "", "cron": "0 9 * * *"}
    base |= {"time_zone": "Europe/Paris", "at_0": "", "at_1": "", "webhook_url": "", "enabled": "on"}
    return base | fields


def _errors(answer) -> dict:
    return answer.context["adminform"].form.errors if answer.context else {}


def test_a_tenants_staff_adds_a_cron_schedule(staff_a, tenant_a) -> None:
    assert staff_a.get(ADD).status_code == 200
    answer = staff_a.post(ADD, _form(tenant_a))
    assert answer.status_code == 302, _errors(answer)
    schedule = Schedule.objects.get(tenant=tenant_a)
    assert (schedule.cron, schedule.time_zone, schedule.agent.name) == ("0 9 * * *", "Europe/Paris", "echo")
    assert schedule.next_run_at is not None and schedule.next_run_at > datetime.now(UTC)


def test_the_form_refuses_what_the_api_refuses(staff_a, tenant_a) -> None:
    assert "cron" in _errors(staff_a.post(ADD, _form(tenant_a, cron="every day")))
    assert "cron" in _errors(staff_a.post(ADD, _form(tenant_a, cron="")))  # neither cron nor at
    past = {"cron": "", "at_0": "2001-01-01", "at_1": "10:00:00"}
    assert "at" in _errors(staff_a.post(ADD, _form(tenant_a, **past)))
    both = {"at_0": "2099-01-01", "at_1": "10:00:00"}
    assert "at" in _errors(staff_a.post(ADD, _form(tenant_a, **both)))
    assert not Schedule.objects.exists()


def test_a_change_of_timing_moves_next_run_and_keeps_a_claim(staff_a, tenant_a) -> None:
    schedule = schedule_create(tenant=tenant_a, agent="echo", message="m", cron="* * * * *")
    due = schedule.next_run_at
    schedules_fire(now=due)  # claimed meanwhile: next_run_at moved on in the database
    answer = staff_a.post(change_url(schedule), _form(tenant_a, message="changed", cron="* * * * *", time_zone="UTC"))
    assert answer.status_code == 302, _errors(answer)
    schedule.refresh_from_db()
    assert schedule.message == "changed" and schedule.next_run_at == due + timedelta(minutes=1)
    at = datetime.now(UTC) + timedelta(days=1)
    one_time = {"cron": "", "time_zone": "UTC", "at_0": at.strftime("%Y-%m-%d"), "at_1": at.strftime("%H:%M:%S")}
    answer = staff_a.post(change_url(schedule), _form(tenant_a, **one_time))
    assert answer.status_code == 302, _errors(answer)
    schedule.refresh_from_db()
    assert schedule.cron == "" and schedule.next_run_at == schedule.at == at.replace(microsecond=0)


def test_staff_see_only_their_tenants_schedules(staff_a, tenant_a, tenant_b) -> None:
    mine = schedule_create(tenant=tenant_a, agent="echo", message="mine", cron="* * * * *")
    theirs = schedule_create(tenant=tenant_b, agent="echo", message="theirs", cron="* * * * *")
    page = staff_a.get(LIST)
    assert page.status_code == 200
    assert [s.pk for s in page.context["cl"].result_list] == [mine.pk]
    assert staff_a.get(change_url(theirs)).status_code in (302, 404)
    other_agent = Agent.objects.get(tenant=tenant_b, name="echo")
    answer = staff_a.post(ADD, _form(tenant_a, agent=other_agent.pk))
    assert "agent" in _errors(answer)
    assert Schedule.objects.filter(tenant=tenant_a).count() == 1
