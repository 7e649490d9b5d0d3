"""The key decides the tenant: the same ids in two tenants are two things, and B never reaches A's."""

from __future__ import annotations

import pytest
from django.http import Http404

from sessions_app.stores import get_store
from sessions_app.stores.base import SessionKey


@pytest.fixture(params=["in_memory", "redis", "dynamodb"])
def backend(request, make_store, use_store):
    return use_store(make_store(request.param))


def test_same_session_id_is_two_sessions(make_tenant, backend) -> None:
    a, b = make_tenant(), make_tenant()
    assert (
        a.post("/run", {"agent": "echo", "message": "a1", "session_id": "same"})
        .json()["result"]
        .startswith("echo[turns=1]")
    )
    assert (
        a.post("/run", {"agent": "echo", "message": "a2", "session_id": "same"})
        .json()["result"]
        .startswith("echo[turns=2]")
    )
    assert b.post("/run", {"agent": "echo", "message": "b1", "session_id": "same"}).json()["result"] == (
        "echo[turns=1]: b1"
    )
    a_msgs = [m["content"] for m in a.get("/sessions/same/messages").json()["messages"]]
    b_msgs = [m["content"] for m in b.get("/sessions/same/messages").json()["messages"]]
    assert a_msgs == ["a1", "echo[turns=1]: a1", "a2", "echo[turns=2]: a2"]
    assert b_msgs == ["b1", "echo[turns=1]: b1"]


def test_b_gets_404_for_as_session_run_and_agent(make_tenant, backend) -> None:
    a, b = make_tenant(), make_tenant()
    a.post("/agents", {"name": "private-bot", "framework": "echo", "config": {}})
    run = a.post("/run", {"agent": "private-bot", "message": "secret", "session_id": "a-only"}).json()
    assert b.get("/sessions/a-only/messages").status_code == 404
    assert b.delete("/sessions/a-only").status_code == 404
    assert b.get(f"/runs/{run['run_id']}").status_code == 404
    assert b.post("/run", {"agent": "private-bot", "message": "x"}).status_code == 404
    assert "private-bot" not in [agent["name"] for agent in b.get("/agents").json()]
    # A's session is intact in the store and the index.
    assert [m["content"] for m in a.get("/sessions/a-only/messages").json()["messages"]] == [
        "secret",
        "echo[turns=1]: secret",
    ]
    assert get_store().load(SessionKey(tenant=a.tenant.slug, session_id="a-only")).total == 2


def test_b_cannot_name_a_in_the_body(make_tenant, backend) -> None:
    a, b = make_tenant(), make_tenant()
    a.post("/run", {"agent": "echo", "message": "x", "session_id": "s1"})
    body = {"agent": "echo", "message": "y", "session_id": "s1", "tenant": a.tenant.slug, "tenant_id": a.tenant.pk}
    assert b.post("/run", body).json()["result"] == "echo[turns=1]: y"
    assert get_store().load(SessionKey(tenant=a.tenant.slug, session_id="s1")).total == 2


@pytest.mark.django_db
def test_an_async_run_takes_its_own_tenants_agent_and_session(make_tenant, django_assert_num_queries) -> None:
    """``run_record`` looks the agent and session up by name within the tenant."""
    from agents_app.models import Agent, Run
    from agents_app.runs.submit import RunRequest, run_record

    a, b = make_tenant(), make_tenant()
    for tenant in (a.tenant, b.tenant):  # the same agent name and session id in both
        first, _ = run_record(RunRequest("echo", "new", session_id="same", mode="queued"), tenant=tenant)
        assert (first.session.tenant_id, first.agent.tenant_id) == (tenant.pk, tenant.pk)
    # A turn of a known conversation: agent, session, whether it has a paused run (409 now), whether
    # the tenant has held runs or its cap of runs in flight (``runs.dispatch``: two), INSERT.
    with django_assert_num_queries(6):
        turn, created = run_record(RunRequest("echo", "again", session_id="same", mode="queued"), tenant=b.tenant)
        assert created and turn.session.session_id == "same" and turn.agent.name == "echo"
    stored = Run.objects.select_related("agent", "session").get(pk=turn.pk)
    assert (stored.tenant_id, stored.session.tenant_id, stored.agent.tenant_id) == (b.tenant.pk,) * 3
    assert stored.session_id == first.session_id and stored.message == "again" and stored.status == "queued"
    Agent.objects.create(tenant=a.tenant, name="a-only", framework="echo")
    with pytest.raises(Http404):  # another tenant's agent is not found by name, session or not
        run_record(RunRequest("a-only", "x", session_id="same", mode="queued"), tenant=b.tenant)
    assert Run.objects.filter(tenant=b.tenant).count() == 2
