"""The key decides the tenant: the same ids in two tenants are two things, and B never reaches A's."""

from __future__ import annotations

import pytest

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
