"""Compaction for the frameworks that keep an agent's history in its own state and read no window:
``google_adk`` (ADK's events) and ``langgraph`` in mode checkpoint (the graph's checkpoint). Before
a new message, the turns a summary covers whole become one user message carrying it; against the
project's model server, through the API."""

from __future__ import annotations

from typing import Any

import pytest

from agents_app.compaction.summarise import INSTRUCTIONS
from agents_app.compaction.window import SUMMARY_HEADING, covered_turns
from agents_app.frameworks.google_adk_session import ADK_KEY, SUMMARY_KEY, TURN_KEY
from sessions_app.stores import get_store
from sessions_app.stores.base import SessionKey
from tests.agents_app.test_compaction import agent, chat, compact
from tests.modelserver import ModelServer, Reply

FRAMEWORKS = {
    "google_adk": {},
    "langgraph": {"graph": "chat", "mode": "checkpoint"},
}


@pytest.mark.parametrize(
    ("openings", "total", "covers", "covered"),
    [
        ([0, 2, 4, 6], 8, 6, 3),  # the turns of entries 0-5 are covered, the latest is not
        ([0, 2, 4, 6], 8, 5, 2),  # the third turn's reply is not covered: the turn is kept whole
        ([0, 2, 4, 6], 8, 1, 0),
        ([0, 4, 6], 8, 6, 2),  # another agent's entries between turns count with the turn before
        ([None, None, 4, 6], 8, 6, 3),  # turns of unknown numbers end where the next known opens
        ([None, None], 8, 6, 0),  # none known: the latest ends with the history, nothing is covered
        ([6], 8, 7, 0),  # the latest turn is never covered: the summary keeps entries after it
    ],
)
def test_covered_turns(openings: list[int | None], total: int, covers: int, covered: int) -> None:
    assert covered_turns(openings, total, covers) == covered


def own_agent(alice: Any, server: ModelServer, framework: str, settings: Any, **compaction: Any) -> Any:
    from tests.agents_app.test_langgraph import GRAPHS

    settings.AK_AGENTS = {**settings.AK_AGENTS, "GRAPHS": GRAPHS}
    config = {"base_url": server.url, "model": "m1", **FRAMEWORKS[framework]}
    if framework == "google_adk":
        config["history"] = 8
    config["compaction"] = {"after": 6, "keep": 2, "agent": "summariser", **compaction}
    return alice.post("/agents", {"name": "gpt", "framework": framework, "config": config})


def texts(body: dict[str, Any]) -> list[str]:
    """The texts of the messages a model was sent, system instructions apart."""
    found = []
    for message in body["messages"]:
        if message["role"] == "system":
            continue
        content = message.get("content") or ""
        found.append(content if isinstance(content, str) else "".join(p.get("text", "") for p in content))
    return found


def summaries_of(server: ModelServer, *summaries: str) -> None:
    """The model server answers the summariser with each of ``summaries`` in turn, the agent as usual."""
    left = list(summaries)

    def answer(body: dict[str, Any]) -> Reply | None:
        return Reply(left.pop(0)) if str(body["messages"][-1]["content"]).startswith(INSTRUCTIONS) else None

    server.reply_with(answer)


def own_history(alice: Any, framework: str) -> list[str]:
    """The agent's own history as its state keeps it: each message's text, in order."""
    key = SessionKey(alice.tenant.slug, "long")
    state = get_store().load(key, scopes=("gpt",), window=0).state["gpt"]
    if framework == "google_adk":
        events = state[ADK_KEY]["events"]
        return ["".join(p.get("text", "") for p in e["content"]["parts"]) for e in events if e.get("content")]
    messages = state["checkpoint"]["namespaces"][""]["checkpoint"]["channel_values"]["messages"]
    return [m["value"]["data"]["content"] for m in messages]


@pytest.fixture(params=sorted(FRAMEWORKS))
def framework(request: pytest.FixtureRequest) -> str:
    pytest.importorskip("google.adk" if request.param == "google_adk" else "langgraph")
    return request.param


def test_the_model_is_sent_the_summary_and_the_turns_it_does_not_cover(
    alice, model_server, settings, framework
) -> None:
    assert agent(alice, "summariser", model_server).status_code == 201
    made = own_agent(alice, model_server, framework, settings)
    assert made.status_code == 201, made.json()
    summaries_of(model_server, "First summary.", "Second summary.")
    chat(alice, range(1, 5))  # 8 entries, past 6
    assert "q1" in texts(model_server.last.body)
    assert compact(alice) == "compacted"  # entries 0-5 (q1 to q3) summarised, q4's turn kept

    chat(alice, range(5, 6))
    assert texts(model_server.last.body) == [f"{SUMMARY_HEADING}\nFirst summary.", "q4", "reply to: q4", "q5"]
    assert own_history(alice, framework) == [
        f"{SUMMARY_HEADING}\nFirst summary.",
        "q4",
        "reply to: q4",
        "q5",
        "reply to: q5",
    ]

    chat(alice, range(6, 8))  # 15 entries, 8 past the first summary: the second covers q4 to q6
    assert compact(alice) == "compacted"
    chat(alice, range(8, 9))
    assert texts(model_server.last.body) == [f"{SUMMARY_HEADING}\nSecond summary.", "q7", "reply to: q7", "q8"]
    assert own_history(alice, framework)[0] == f"{SUMMARY_HEADING}\nSecond summary."  # one summary, replaced
    assert sum(SUMMARY_HEADING in text for text in own_history(alice, framework)) == 1


def test_a_run_before_the_compaction_sees_its_whole_history(alice, model_server, settings, framework) -> None:
    assert agent(alice, "summariser", model_server).status_code == 201
    assert own_agent(alice, model_server, framework, settings).status_code == 201
    chat(alice, range(1, 6))
    assert texts(model_server.last.body)[:2] == ["q1", "reply to: q1"]  # no summary yet: all of it


def test_adk_numbers_each_turn_and_keeps_the_summary_first_past_its_history(alice, model_server, settings) -> None:
    pytest.importorskip("google.adk")
    assert agent(alice, "summariser", model_server).status_code == 201
    assert own_agent(alice, model_server, "google_adk", settings).status_code == 201
    summaries_of(model_server, "First summary.")
    chat(alice, range(1, 5))
    key = SessionKey(alice.tenant.slug, "long")
    events = get_store().load(key, scopes=("gpt",), window=0).state["gpt"][ADK_KEY]["events"]
    assert [e["customMetadata"][TURN_KEY] for e in events if e["author"] == "user"] == [0, 2, 4, 6]
    assert compact(alice) == "compacted"
    chat(alice, range(5, 9))  # 4 turns after the summary: 8 events, ADK's history
    events = get_store().load(key, scopes=("gpt",), window=0).state["gpt"][ADK_KEY]["events"]
    assert events[0]["customMetadata"] == {SUMMARY_KEY: 8}
    assert len(events) == 9  # the summary, then the latest 8 events


def test_adk_s_history_must_outlast_after(alice, model_server, settings) -> None:
    pytest.importorskip("google.adk")
    assert agent(alice, "summariser", model_server).status_code == 201
    answer = own_agent(alice, model_server, "google_adk", settings, after=8)
    assert answer.status_code == 400
    assert "less than the 8 entries" in str(answer.json()["fields"]["config.compaction.after"])


def test_a_graph_whose_messages_are_not_add_messages_keeps_its_checkpoint_whole(alice, model_server, settings) -> None:
    """Its reducer would append the summary's ``RemoveMessage`` as a message: nothing is replaced,
    and the model is sent the graph's whole history as before."""
    pytest.importorskip("langgraph")
    from tests.agents_app.test_langgraph import GRAPHS

    settings.AK_AGENTS = {**settings.AK_AGENTS, "GRAPHS": {**GRAPHS, "appended": "tests.agent_graphs.appended"}}
    assert agent(alice, "summariser", model_server).status_code == 201
    config = {"base_url": model_server.url, "model": "m1", "graph": "appended", "mode": "checkpoint"}
    config["compaction"] = {"after": 6, "keep": 2, "agent": "summariser"}
    assert alice.post("/agents", {"name": "gpt", "framework": "langgraph", "config": config}).status_code == 201
    summaries_of(model_server, "First summary.")
    chat(alice, range(1, 5))
    assert compact(alice) == "compacted"  # the session's history is summarised all the same
    chat(alice, range(5, 6))
    assert texts(model_server.last.body)[:2] == ["q1", "reply to: q1"]
    assert len(own_history(alice, "langgraph")) == 10 and SUMMARY_HEADING not in str(own_history(alice, "langgraph"))
