"""A run as its tenant sees it (``RunOutput``): the same in ``GET /runs/<id>``, a session's runs,
a cancel's answer and a webhook's body, in every state; never which process ran it."""

from __future__ import annotations

import json

from django.utils import timezone

from agents_app.models import Run
from agents_app.runs.output import RunOutput
from agents_app.runs.submit import RunRequest, run_record
from agents_app.selectors import run_get

FIELDS = [
    "run_id",
    "session_id",
    "agent",
    "status",
    "result",
    "error",
    "created_at",
    "started_at",
    "finished_at",
    "cancel_requested_at",
    "attempts",
    "webhook_status",
    "usage",
    "pause",
    "paused_at",
]


def test_a_run_is_shown_with_its_fields_in_every_state(alice, settings) -> None:
    done = alice.post("/run", {"agent": "echo", "message": "hi"}).json()["run_id"]
    queued = alice.post("/run", {"agent": "echo", "message": "later", "async": True}).json()["run_id"]
    runs = [run_get(tenant=alice.tenant, run_id=run_id) for run_id in (done, queued)]
    failed, _ = run_record(RunRequest("echo", "x", mode="queued"), tenant=alice.tenant)
    now = timezone.now()
    Run.objects.filter(pk=failed.pk).update(
        status=Run.Status.FAILED,
        error="RuntimeError: no",
        started_at=now,
        finished_at=now,
        attempts=2,
        worker="w@host:12",
        webhook_status=Run.Webhook.FAILED,
        usage={"prompt_tokens": 7, "completion_tokens": 3},
    )
    runs.append(run_get(tenant=alice.tenant, run_id=str(failed.pk)))
    shown = [RunOutput(run).data for run in runs]
    assert all(list(body) == FIELDS for body in shown)
    assert [body["status"] for body in shown] == ["succeeded", "queued", "failed"]
    assert shown[0]["result"] == "echo[turns=1]: hi" and shown[0]["agent"] == "echo"
    assert shown[1]["started_at"] is None and shown[1]["usage"] is None
    assert shown[2]["usage"] == {"prompt_tokens": 7, "completion_tokens": 3} and shown[2]["attempts"] == 2
    assert shown[2]["error"] == "RuntimeError: no" and shown[2]["webhook_status"] == "failed"
    assert shown[2]["run_id"] == str(failed.pk) and shown[2]["session_id"] == failed.session.session_id
    for zone in ("UTC", "Europe/Paris"):  # ISO 8601 in the current time zone
        settings.TIME_ZONE = zone
        assert RunOutput(runs[2]).data["finished_at"] == timezone.localtime(now).isoformat().replace("+00:00", "Z")


def test_tenants_do_not_see_the_worker_the_admin_does(alice, transactional_db) -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from agents_app.webhooks import webhook_payload

    answer = alice.post("/run", {"agent": "echo", "message": "hi"}).json()
    run = Run.objects.select_related("session", "agent").get(pk=answer["run_id"])
    assert run.worker  # the platform knows which process ran it
    shown = [
        alice.get(f"/runs/{run.pk}").json(),
        alice.get(f"/sessions/{answer['session_id']}/runs").json()["runs"][0],
        alice.post(f"/runs/{run.pk}/cancel").json(),
        json.loads(webhook_payload(run)),
    ]
    for body in shown:
        assert body["run_id"] == str(run.pk) and "worker" not in body
        assert run.worker not in json.dumps(body)
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", password="pw-0123456789"))
    page = admin.get(f"/admin/agents_app/run/{run.pk}/change/")
    assert page.status_code == 200 and run.worker in page.content.decode()
