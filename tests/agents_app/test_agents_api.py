"""GET and POST /agents: every tenant has echo; configs are validated per framework."""

from __future__ import annotations

import pytest

from agents_app.models import Agent


def test_every_tenant_has_echo(alice) -> None:
    agents = alice.get("/agents").json()
    assert [(a["name"], a["framework"], a["config"]) for a in agents] == [("echo", "echo", {})]


def test_create_an_agent(alice) -> None:
    response = alice.post("/agents", {"name": "slow-echo", "framework": "echo", "config": {"delay_s": 1.5}})
    assert response.status_code == 201
    assert response.json()["config"] == {"delay_s": 1.5}
    assert [a["name"] for a in alice.get("/agents").json()] == ["echo", "slow-echo"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"framework": "echo"}, "name"),
        ({"name": "bad name!", "framework": "echo"}, "name"),
        ({"name": "x", "framework": "gpt-9000"}, "framework"),
        ({"name": "x", "framework": "echo", "config": {"delay_s": 61}}, "config"),
        ({"name": "x", "framework": "echo", "config": {"delay_s": "soon"}}, "config"),
        ({"name": "x", "framework": "echo", "config": {"temperature": 1}}, "config"),
        ({"name": "x", "framework": "echo", "config": [1]}, "config"),
        ({"name": "echo", "framework": "echo"}, "name"),
    ],
)
def test_invalid_agents_are_400(alice, body: dict, field: str) -> None:
    alice.get("/agents")
    before = Agent.objects.count()
    response = alice.post("/agents", body)
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert Agent.objects.count() == before
