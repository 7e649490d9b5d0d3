"""Where CrewAI is not installed (the main environment), a ``crewai`` agent is refused, naming
what to install; a run of one saved before fails without touching the session."""

from __future__ import annotations

import importlib.util

import pytest

from agents_app.models import Agent

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("crewai") is not None, reason="CrewAI is installed here: tests/agents_app/test_crewai.py"
)
CONFIG = {"base_url": "https://api.example.com/v1", "model": "m", "role": "r", "goal": "g", "backstory": "b"}


def test_a_crewai_agent_is_refused_naming_what_to_install(alice) -> None:
    answer = alice.post("/agents", {"name": "crew", "framework": "crewai", "config": CONFIG})
    assert answer.status_code == 400, answer.json()
    assert "pip install -r requirements/crewai.txt" in str(answer.json())


def test_a_run_of_an_agent_saved_before_fails_and_commits_nothing(alice) -> None:
    Agent.objects.create(tenant=alice.tenant, name="crew", framework="crewai", config=CONFIG)
    answer = alice.post("/run", {"agent": "crew", "message": "hi", "session_id": "m"})
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed"
    assert "pip install -r requirements/crewai.txt" in answer.json()["detail"]
    assert alice.get("/sessions/m/messages").json()["messages"] == []
