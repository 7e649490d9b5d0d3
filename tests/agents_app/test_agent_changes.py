"""A run reads its agent as it is now: a change made anywhere applies to the next run; an agent
deleted elsewhere is a 404, not a server error."""

from __future__ import annotations

import pytest
from django.db import connection
from django.http import Http404

from agents_app.models import Agent
from agents_app.runs.submit import RunRequest, run_record
from agents_app.services import agent_get


@pytest.fixture
def bot(alice):
    return Agent.objects.create(tenant=alice.tenant, name="bot", framework="echo", config={})


def _config_used(alice) -> dict:
    run, _ = run_record(RunRequest("bot", "hi", mode="queued"), tenant=alice.tenant)
    return run.agent.config


def test_a_change_made_in_this_process_applies_to_the_next_run(alice, bot) -> None:
    assert _config_used(alice) == {}
    bot.config = {"delay_s": 0.1}
    bot.save()  # the admin, the API
    assert _config_used(alice) == {"delay_s": 0.1}


def test_a_change_made_elsewhere_applies_to_the_next_run(alice, bot) -> None:
    assert _config_used(alice) == {}
    Agent.objects.filter(pk=bot.pk).update(config={"delay_s": 0.1})  # no signal here: another process
    assert _config_used(alice) == {"delay_s": 0.1}


def test_an_agent_deleted_elsewhere_is_a_404(alice, bot) -> None:
    assert agent_get(tenant=alice.tenant, name="bot") == bot
    with connection.cursor() as cursor:  # as another process would: no signal here
        cursor.execute("DELETE FROM agents_app_agent WHERE id = %s", [bot.pk])
    for session_id in (None, "kept"):  # a new session (one transaction), a named one
        with pytest.raises(Http404):
            run_record(RunRequest("bot", "hi", session_id=session_id, mode="queued"), tenant=alice.tenant)


def test_each_tenant_runs_its_own_agent_of_a_name(make_tenant) -> None:
    a, b = make_tenant(), make_tenant()
    Agent.objects.create(tenant=a.tenant, name="bot", framework="echo", config={"delay_s": 0.1})
    Agent.objects.create(tenant=b.tenant, name="bot", framework="echo", config={})
    for _ in range(2):
        assert run_record(RunRequest("bot", "x", mode="queued"), tenant=a.tenant)[0].agent.tenant_id == a.tenant.pk
        assert run_record(RunRequest("bot", "x", mode="queued"), tenant=b.tenant)[0].agent.tenant_id == b.tenant.pk
