"""POST, GET, PATCH and DELETE /schedules and GET /schedules/<id>/runs: every answer, each tenant
seeing only its own."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from agents_app.models import Schedule
from agents_app.schedules.firing import schedules_fire

KEYS = {"schedule_id", "agent", "message", "session_id", "cron", "timezone", "at", "next_run_at", "enabled"}


def _soon(seconds: float = 3600) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def _patch(client, path: str, data: object):
    return client.client.patch(path, data, format="json")


def test_create_a_cron_schedule(alice) -> None:
    body = {"agent": "echo", "message": "report", "cron": "*/5 * * * *", "timezone": "Europe/Paris"}
    created = alice.post("/schedules", body)
    assert created.status_code == 201, created.json()
    out = created.json()
    assert set(out) == KEYS  # CONTRACT: exactly these
    assert out["agent"] == "echo" and out["message"] == "report" and out["cron"] == "*/5 * * * *"
    assert out["timezone"] == "Europe/Paris" and out["at"] is None and out["session_id"] is None
    assert out["enabled"] is True
    next_run = datetime.fromisoformat(out["next_run_at"])
    assert next_run > datetime.now(UTC) and next_run.minute % 5 == 0 and next_run.second == 0
    assert uuid.UUID(out["schedule_id"])


def test_create_a_one_time_schedule_on_a_session(alice) -> None:
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    body = {"agent": "echo", "message": "once", "at": at.isoformat(), "session_id": "daily", "webhook": None}
    out = alice.post("/schedules", body).json()
    assert out["cron"] is None and out["session_id"] == "daily" and out["timezone"] == "UTC"
    assert datetime.fromisoformat(out["at"]) == at == datetime.fromisoformat(out["next_run_at"])


def test_an_at_without_an_offset_is_read_in_the_timezone(alice) -> None:
    out = alice.post(
        "/schedules", {"agent": "echo", "message": "m", "at": "2099-06-01T09:00", "timezone": "Asia/Tokyo"}
    ).json()
    assert datetime.fromisoformat(out["at"]) == datetime(2099, 6, 1, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"agent": "echo", "message": "m"}, "cron"),  # neither cron nor at
        ({"agent": "echo", "message": "m", "cron": "* * * * *", "at": "2099-01-01T00:00:00Z"}, "at"),  # both
        ({"agent": "echo", "message": "m", "cron": "every minute"}, "cron"),
        ({"agent": "echo", "message": "m", "cron": "* * * * * *"}, "cron"),  # six fields
        ({"agent": "echo", "message": "m", "cron": "0 0 30 2 *"}, "cron"),  # never comes
        ({"agent": "echo", "message": "m", "cron": "61 * * * *"}, "cron"),
        ({"agent": "echo", "message": "m", "cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"agent": "echo", "message": "m", "at": "2001-01-01T00:00:00Z"}, "at"),  # past
        ({"agent": "echo", "message": "m", "at": "tomorrow"}, "at"),
        ({"agent": "echo", "message": "m", "at": "2099-13-01T00:00"}, "at"),
        ({"agent": "nobody", "message": "m", "cron": "* * * * *"}, "agent"),
        ({"agent": "echo", "cron": "* * * * *"}, "message"),
        ({"message": "m", "cron": "* * * * *"}, "agent"),
        ({"agent": "echo", "message": "m", "cron": "* * * * *", "session_id": "bad id"}, "session_id"),
        ({"agent": "echo", "message": "m", "cron": "* * * * *", "webhook": "ftp://x"}, "webhook"),
        ({"agent": "echo", "message": "m", "cron": "* * * * *", "enabled": "yes"}, "enabled"),
        ({"agent": "echo", "message": "m", "cron": 5}, "cron"),
    ],
)
def test_a_bad_schedule_is_a_400_naming_the_field(alice, body: dict, field: str) -> None:
    response = alice.post("/schedules", body)
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid"
    assert list(response.json()["fields"]) == [field]
    assert not Schedule.objects.filter(tenant=alice.tenant).exists()


def test_a_message_over_the_limit_is_a_413(alice) -> None:
    message = "x" * (settings.AK_RUN["MAX_MESSAGE_BYTES"] // 2 + 1)
    body = {"agent": "echo", "message": "é" * len(message), "cron": "* * * * *"}
    assert alice.post("/schedules", body).status_code == 413


def test_no_key_is_a_401(client) -> None:
    assert client.get("/schedules").status_code == 401


def test_list_get_patch_and_delete(alice) -> None:
    first = alice.post("/schedules", {"agent": "echo", "message": "a", "cron": "0 9 * * *"}).json()
    second = alice.post("/schedules", {"agent": "echo", "message": "b", "at": _soon()}).json()
    listed = alice.get("/schedules")
    assert listed.status_code == 200
    assert [s["schedule_id"] for s in listed.json()] == [second["schedule_id"], first["schedule_id"]]
    assert alice.get(f"/schedules/{first['schedule_id']}").json() == first

    path = f"/schedules/{first['schedule_id']}"
    changed = _patch(alice, path, {"message": "a2", "timezone": "America/New_York"})
    assert changed.status_code == 200
    assert changed.json()["message"] == "a2" and changed.json()["timezone"] == "America/New_York"
    nine = datetime.fromisoformat(changed.json()["next_run_at"]).astimezone(
        __import__("zoneinfo").ZoneInfo("America/New_York")
    )
    assert (nine.hour, nine.minute) == (9, 0)

    disabled = _patch(alice, path, {"enabled": False}).json()
    assert disabled["enabled"] is False and disabled["next_run_at"] is None
    enabled = _patch(alice, path, {"enabled": True}).json()
    assert enabled["next_run_at"] == changed.json()["next_run_at"]

    at = _soon(7200)
    one_time = _patch(alice, path, {"at": at}).json()  # a cron schedule made one-time
    assert one_time["cron"] is None and datetime.fromisoformat(one_time["at"]) == datetime.fromisoformat(at)
    back = _patch(alice, path, {"cron": "@hourly", "session_id": "s1"}).json()
    assert back["cron"] == "@hourly" and back["at"] is None and back["session_id"] == "s1"
    assert _patch(alice, path, {"session_id": None}).json()["session_id"] is None

    assert alice.delete(path).status_code == 204
    assert alice.get(path).status_code == 404
    assert alice.delete(path).status_code == 404
    assert [s["schedule_id"] for s in alice.get("/schedules").json()] == [second["schedule_id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "* * * * *", "at": "2099-01-01T00:00:00Z"}, "at"),
        ({"cron": "nope"}, "cron"),
        ({"cron": ""}, "cron"),
        ({"at": "2001-01-01T00:00:00Z"}, "at"),
        ({"timezone": "Nowhere"}, "timezone"),
        ({"agent": "nobody"}, "agent"),
        ({"enabled": None}, "enabled"),
    ],
)
def test_a_bad_change_is_a_400_and_changes_nothing(alice, body: dict, field: str) -> None:
    made = alice.post("/schedules", {"agent": "echo", "message": "a", "cron": "0 9 * * *"}).json()
    response = _patch(alice, f"/schedules/{made['schedule_id']}", body)
    assert response.status_code == 400, response.json()
    assert list(response.json()["fields"]) == [field]
    assert alice.get(f"/schedules/{made['schedule_id']}").json() == made


def test_unknown_ids_are_404s(alice) -> None:
    for path in ["/schedules/not-a-uuid", f"/schedules/{uuid.uuid4()}", f"/schedules/{uuid.uuid4()}/runs"]:
        response = alice.get(path)
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert _patch(alice, f"/schedules/{uuid.uuid4()}", {"message": "x"}).status_code == 404


def test_tenants_see_only_their_own(alice, make_tenant) -> None:
    bob = make_tenant()
    mine = alice.post("/schedules", {"agent": "echo", "message": "alice's", "cron": "* * * * *"}).json()
    path = f"/schedules/{mine['schedule_id']}"
    assert bob.get("/schedules").json() == []
    assert bob.get(path).status_code == 404
    assert bob.get(f"{path}/runs").status_code == 404
    assert _patch(bob, path, {"message": "bob's"}).status_code == 404
    assert bob.delete(path).status_code == 404
    assert alice.get(path).json() == mine
    # Nor can a body name another tenant's agent.
    alice.post("/agents", {"name": "private", "framework": "echo", "config": {}})
    response = bob.post("/schedules", {"agent": "private", "message": "m", "cron": "* * * * *"})
    assert response.status_code == 400 and list(response.json()["fields"]) == ["agent"]


def test_its_runs_newest_first_in_the_shape_of_a_run(alice) -> None:
    made = alice.post("/schedules", {"agent": "echo", "message": "tick", "cron": "* * * * *"}).json()
    start = datetime.fromisoformat(made["next_run_at"])
    for minute in range(3):
        assert schedules_fire(now=start + timedelta(minutes=minute, seconds=1)) == 1
    runs = alice.client.get(f"/schedules/{made['schedule_id']}/runs", {"limit": 2})
    assert runs.status_code == 200
    page = runs.json()
    assert len(page) == 2
    first = page[0]
    assert first == alice.get(f"/runs/{first['run_id']}").json()
    next_page = re.fullmatch(r'<(http://testserver/schedules/[^?]+/runs\?[^>]+)>; rel="next"', runs["Link"])
    assert next_page is not None, runs["Link"]
    rest = alice.client.get(next_page.group(1))
    assert "Link" not in rest and len(rest.json()) == 1
    listed = [*page, *rest.json()]
    created = [r["created_at"] for r in listed]
    assert created == sorted(created, reverse=True)
    assert {r["agent"] for r in listed} == {"echo"}
    assert len({r["session_id"] for r in listed}) == 3  # a new session each firing


def test_a_schedule_over_the_tenants_limit_is_a_403(alice, make_tenant, settings) -> None:
    settings.AK_LIMITS = {**settings.AK_LIMITS, "SCHEDULES": 1}
    body = {"agent": "echo", "message": "m", "cron": "* * * * *"}
    assert alice.post("/schedules", body).status_code == 201
    refused = alice.post("/schedules", body)
    assert refused.status_code == 403
    assert refused.json()["code"] == "limit_reached" and refused.json()["limit"] == "schedules"
    assert Schedule.objects.filter(tenant=alice.tenant).count() == 1
    assert make_tenant().post("/schedules", body).status_code == 201  # another tenant's own limit
