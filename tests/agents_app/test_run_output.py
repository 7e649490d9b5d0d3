"""RunOutput declares the fields a ModelSerializer of Run would derive (the API and its document
stay what they were), so that showing a run, which a client polls, does not derive them each time."""

from __future__ import annotations

import json

from rest_framework import serializers

from agents_app.api.serializers import RunOutput
from agents_app.models import Run

MODEL_FIELDS = [name for name in RunOutput().fields if name not in {"run_id", "session_id", "agent", "usage"}]


class Derived(serializers.ModelSerializer):
    class Meta:
        model = Run
        fields = MODEL_FIELDS


def test_each_field_is_the_one_a_model_serializer_derives() -> None:
    declared, derived = RunOutput().fields, Derived().fields
    for name in MODEL_FIELDS:
        mine, theirs = declared[name], derived[name]
        assert type(mine) is type(theirs), name
        for attribute in ("required", "allow_null", "read_only", "max_length", "min_value", "max_value"):
            assert getattr(mine, attribute, None) == getattr(theirs, attribute, None), (name, attribute)
        if isinstance(theirs, serializers.ChoiceField):
            assert mine.choices == theirs.choices and mine.allow_blank == theirs.allow_blank, name


def test_what_showing_a_run_reads_covers_every_field() -> None:
    sources = {field.source for field in RunOutput().fields.values()}
    columns = {column.replace("__", ".") for column in RunOutput.COLUMNS}
    assert sources <= columns


def test_a_run_is_shown_as_its_fields_would_show_it(alice, settings) -> None:
    """``RunOutput.to_representation`` is written out (a poll's CPU): the same values, of the same
    types, as DRF's representation through the declared fields, for runs in every state."""
    from django.utils import timezone

    from agents_app.selectors import run_get
    from agents_app.services import runs_record

    done = alice.post("/run", {"agent": "echo", "message": "hi"}).json()["run_id"]
    queued = alice.post("/run", {"agent": "echo", "message": "later", "async": True}).json()["run_id"]
    runs = [run_get(tenant=alice.tenant, run_id=run_id) for run_id in (done, queued)]
    failed = runs_record([{"tenant": alice.tenant, "agent_name": "echo", "message": "x", "request_hash": ""}])[0][0]
    Run.objects.filter(pk=failed.pk).update(
        status=Run.Status.FAILED,
        error="RuntimeError: no",
        started_at=timezone.now(),
        finished_at=timezone.now(),
        attempts=2,
        worker="w@host:12",
        webhook_status=Run.Webhook.FAILED,
        usage={"prompt_tokens": 7, "completion_tokens": 3},
    )
    runs.append(run_get(tenant=alice.tenant, run_id=str(failed.pk)))
    for zone in ("UTC", "Europe/Paris"):
        settings.TIME_ZONE = zone
        for run in runs:
            written, through_fields = RunOutput(run).data, serializers.Serializer.to_representation(RunOutput(run), run)
            assert written == through_fields
            assert [type(v) for v in written.values()] == [type(v) for v in through_fields.values()]
            assert list(written) == list(through_fields)
    assert {RunOutput(run).data["status"] for run in runs} == {"succeeded", "queued", "failed"}


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
