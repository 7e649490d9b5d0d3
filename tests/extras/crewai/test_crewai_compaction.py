"""Compaction (``agents_app.compaction``) of a ``crewai`` agent's session: its crew is sent the
summary, then only what the summary does not cover (CrewAI reads the window's text messages)."""

from __future__ import annotations

import pytest

pytest.importorskip("crewai", reason="CrewAI runs in its own environment: pip install -r requirements/crewai.txt")

from agents_app.compaction.summarise import INSTRUCTIONS
from agents_app.compaction.window import SUMMARY_HEADING
from tests.agents_app.test_compaction import chat, compact, stored
from tests.extras.crewai.test_crewai import PERSONA
from tests.modelserver import Reply


def test_a_crewai_agent_is_sent_the_summary_and_the_recent_window(alice, model_server) -> None:
    summariser = {"base_url": model_server.url, "model": "m1"}
    made = alice.post("/agents", {"name": "summariser", "framework": "openai_chat", "config": summariser})
    assert made.status_code == 201, made.json()
    config = {"base_url": model_server.url, "model": "m1", "history": 8, **PERSONA}
    config["compaction"] = {"after": 6, "keep": 2, "agent": "summariser"}
    made = alice.post("/agents", {"name": "gpt", "framework": "crewai", "config": config})
    assert made.status_code == 201, made.json()

    def answer(body: dict) -> Reply:
        if str(body["messages"][-1]["content"]).startswith(INSTRUCTIONS):
            return Reply("Earlier turns, summarised.")
        return Reply("ok")

    model_server.reply_with(answer)
    chat(alice, range(1, 5))
    assert "q1" in str(model_server.last.body["messages"])
    assert compact(alice) == "compacted"
    chat(alice, range(5, 6))
    sent = str(model_server.last.body["messages"])
    assert SUMMARY_HEADING in sent and "Earlier turns, summarised." in sent
    assert "q4" in sent and "q5" in sent
    assert "q1" not in sent and "q3" not in sent  # covered by the summary
    kinds = [m.get("kind") for m in stored(alice)]
    assert kinds.count("summary") == 1 and len(kinds) == 11  # 5 turns of two messages, and the summary
