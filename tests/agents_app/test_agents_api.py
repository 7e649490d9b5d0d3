"""GET and POST /agents: every tenant has echo; configs are validated per framework."""

from __future__ import annotations

import sys

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
        ({"name": "x", "framework": "echo", "config": {"delay_s": 1, "a\u0000": 1}}, "config"),
        ({"name": " x", "framework": "echo"}, "name"),
        ({"name": "x\n", "framework": "echo"}, "name"),
    ],
)
def test_invalid_agents_are_400(alice, body: dict, field: str) -> None:
    alice.get("/agents")
    before = Agent.objects.count()
    response = alice.post("/agents", body)
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert Agent.objects.count() == before


def test_a_name_taken_is_a_400_naming_it(alice) -> None:
    """As CONTRACT.md has it: a body the API refuses is a 400 naming the bad field."""
    alice.get("/agents")
    before = Agent.objects.count()
    response = alice.post("/agents", {"name": "echo", "framework": "echo"})
    assert response.status_code == 400 and "name" in response.json()["fields"]
    assert Agent.objects.count() == before


@pytest.mark.parametrize(
    ("framework", "module", "config", "install"),
    [
        ("openai_agents", "agents", {}, "requirements/openai_agents.txt"),
        ("langgraph", "langgraph.graph", {"graph": "chat"}, "requirements/langgraph.txt"),
    ],
)
def test_an_agent_of_a_framework_whose_library_is_missing_is_a_400(
    alice, settings, monkeypatch, framework, module, config, install
) -> None:
    """As on a deployment that did not install the framework's requirements: the import fails
    (``None`` in ``sys.modules`` is how Python spells a module that cannot be imported)."""
    settings.AK_AGENTS = {**settings.AK_AGENTS, "GRAPHS": {"chat": "tests.agent_graphs.chat"}}
    monkeypatch.setitem(sys.modules, module, None)
    body = {
        "name": "x",
        "framework": framework,
        "config": {"base_url": "https://api.example.com/v1", "model": "m", **config},
    }
    response = alice.post("/agents", body)
    assert response.status_code == 400
    assert "framework" in response.json()["fields"] and install in str(response.json())
    assert not Agent.objects.filter(tenant=alice.tenant, name="x").exists()
