"""``langgraph`` graphs that wait for a person (``interrupt``, mode checkpoint), through the API in
process, on the project's model server: the run pauses (``202``, ``pause``) with the graph's
checkpoint kept in the store, and ``POST /runs/<id>/resume`` goes on with ``Command(resume=...)``
from it (the runner gives the adapter a new view of the session, as another process would)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agents_app.frameworks import Decision, Resume
from agents_app.frameworks.langgraph_run import PAUSED, pause_for
from agents_app.models import Agent, Run
from sessions_app.core import Session
from tests import agent_graphs
from tests.agents_app.test_openai_agents_approval import streamed_pause_and_resume
from tests.modelserver import ModelServer
from tests.modelserver import Reply as ModelReply

GRAPHS = {"approval": "tests.agent_graphs.approval", "reviewed": "tests.agent_graphs.reviewed"}


@pytest.fixture(autouse=True)
def _graphs(settings) -> None:
    settings.AK_AGENTS = {**settings.AK_AGENTS, "GRAPHS": GRAPHS}
    agent_graphs.REFUNDED.clear()


def graph_agent(alice, server: ModelServer, graph: str = "approval", **options: Any) -> None:
    config = {"graph": graph, "mode": "checkpoint", "base_url": server.url, "model": "m1", "options": options}
    answer = alice.post("/agents", {"name": "g", "framework": "langgraph", "config": config})
    assert answer.status_code == 201, answer.json()


def run(alice, message: str, session_id: str = "s", **extra: Any):
    return alice.post("/run", {"agent": "g", "message": message, "session_id": session_id, **extra})


def paused(alice, message: str, **extra: Any) -> dict[str, Any]:
    answer = run(alice, message, **extra)
    assert answer.status_code == 202 and answer.json()["status"] == "paused", answer.json()
    return answer.json()


def resume(alice, run_id: str, body: dict[str, Any]):
    return alice.post(f"/runs/{run_id}/resume", body)


def stored(alice, key: str, session_id: str = "s") -> Any:
    return Session(session_id, tenant=alice.tenant.slug).get(key, agent="g")


def history(alice, session_id: str = "s") -> list[tuple[str, str]]:
    entries = alice.get(f"/sessions/{session_id}/messages").json()["messages"]
    return [(m.get("kind", m["role"]), m["content"]) for m in entries]


# --- a question ----------------------------------------------------------------------------------


@pytest.mark.parametrize("structured", [False, True])
def test_an_interrupt_pauses_for_input_and_the_resume_answers_it(alice, model_server, structured) -> None:
    graph_agent(alice, model_server, structured=structured)
    first = paused(alice, "book a flight")
    question = {"question": "Shall I book a flight?"} if structured else "Shall I book a flight?"
    assert first["pause"] == {"kind": "input", "prompt": question}
    assert model_server.requests == []  # it asked before acting
    assert history(alice) == [("user", "book a flight")]
    checkpoint = stored(alice, "checkpoint")
    [(_, channel, interrupts)] = checkpoint["namespaces"][""]["writes"]
    assert channel == "__interrupt__" and interrupts[0]["$type"] == "interrupt"  # waiting, in the store

    answer = resume(alice, first["run_id"], {"input": "yes"})
    assert answer.status_code == 200, answer.json()
    assert answer.json()["result"] == "reply to: approval: yes"
    assert [m["content"] for m in model_server.last.body["messages"]] == ["book a flight", "approval: yes"]
    assert history(alice) == [("user", "book a flight"), ("assistant", "reply to: approval: yes")]
    assert stored(alice, "checkpoint")["namespaces"][""]["writes"] == [] and stored(alice, PAUSED) is None
    shown = alice.get(f"/runs/{first['run_id']}").json()
    assert (shown["status"], shown["usage"]) == ("succeeded", {"prompt_tokens": 10, "completion_tokens": 5})

    # The graph's own history goes on from its checkpoint, and it asks again; any JSON answers it.
    again = paused(alice, "cancel it")
    assert again["pause"]["prompt"] == ({"question": "Shall I cancel it?"} if structured else "Shall I cancel it?")
    done = resume(alice, again["run_id"], {"input": {"answer": "no"}})
    assert done.json()["result"] == "reply to: approval: {'answer': 'no'}"
    assert [m["content"] for m in model_server.last.body["messages"]] == [
        "book a flight",
        "approval: yes",
        "reply to: approval: yes",
        "cancel it",
        "approval: {'answer': 'no'}",
    ]


def test_a_new_message_that_cancels_the_paused_run_is_new_input(alice, model_server) -> None:
    """The cancelled run's interrupt stays in the checkpoint: LangGraph drops it when new input
    comes, and runs the graph from its start."""
    graph_agent(alice, model_server)
    first = paused(alice, "book a flight")
    again = paused(alice, "book a train", on_paused="cancel")
    assert alice.get(f"/runs/{first['run_id']}").json()["status"] == "cancelled"
    assert again["pause"]["prompt"] == "Shall I book a train?"
    assert resume(alice, again["run_id"], {"input": "ok"}).json()["result"] == "reply to: approval: ok"
    assert [m["content"] for m in model_server.last.body["messages"]] == [
        "book a flight",
        "book a train",
        "approval: ok",
    ]


def test_a_failing_resume_fails_the_run_and_commits_nothing(alice, model_server) -> None:
    graph_agent(alice, model_server)
    first = paused(alice, "book a flight")
    before = stored(alice, "checkpoint")
    model_server.fail(500, "the GPU caught fire")
    answer = resume(alice, first["run_id"], {"input": "yes"})
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed" and "500" in answer.json()["detail"]
    assert Run.objects.get(pk=first["run_id"]).status == Run.Status.FAILED
    assert stored(alice, "checkpoint") == before and history(alice) == [("user", "book a flight")]


# --- tool calls to approve -----------------------------------------------------------------------


def calls_refund(*orders: str):
    """The model calls ``refund`` for each order, then answers with the results it was given."""

    def answer(body: dict[str, Any]) -> ModelReply:
        if body["messages"][-1]["role"] == "tool":
            results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
            return ModelReply("Done: " + " / ".join(results))
        return ModelReply(tool_calls=[{"name": "refund", "arguments": {"order": order}} for order in orders])

    return answer


def test_an_interrupt_shaped_as_an_approval_pauses_for_decisions(alice, model_server) -> None:
    graph_agent(alice, model_server, graph="reviewed")
    model_server.reply_with(calls_refund("A1"))
    first = paused(alice, "Refund A1")
    assert first["pause"] == {
        "kind": "approval",
        "requests": [{"id": "action_1", "tool": "refund", "arguments": {"order": "A1"}}],
    }
    assert agent_graphs.REFUNDED == [] and history(alice) == [("user", "Refund A1")]
    assert stored(alice, PAUSED)["usage"] == [10, 5]

    answer = resume(alice, first["run_id"], {"decisions": [{"id": "action_1", "approve": True}]})
    assert answer.json()["result"] == "Done: Order A1 refunded."
    assert agent_graphs.REFUNDED == ["A1"]  # once
    assert history(alice) == [
        ("user", "Refund A1"),
        ("tool_call", 'refund({"order": "A1"})'),
        ("tool_result", "Order A1 refunded."),
        ("assistant", "Done: Order A1 refunded."),
    ]
    usage = alice.get(f"/runs/{first['run_id']}").json()["usage"]
    assert usage == {"prompt_tokens": 20, "completion_tokens": 10}  # both model calls


def test_a_streamed_run_streams_what_the_model_said_before_and_after_its_pause(alice, model_server) -> None:
    graph_agent(alice, model_server, graph="reviewed")
    model_server.reply("Let me check.", tool_calls=[{"name": "refund", "arguments": {"order": "F6"}}])
    model_server.reply("All refunded.")
    answer = Resume(decisions={"action_1": Decision(approve=True)})
    _, before, done, after = streamed_pause_and_resume(Agent.objects.get(name="g"), "Refund F6", answer)
    assert "".join(before) == "Let me check."
    assert "".join(before + after) == done.reply == "Let me check.\n\nAll refunded."
    assert agent_graphs.REFUNDED == ["F6"]


@pytest.mark.parametrize("message", [None, "Not this one."])
def test_a_rejected_action_is_answered_with_the_rejection(alice, model_server, message) -> None:
    graph_agent(alice, model_server, graph="reviewed")
    model_server.reply_with(calls_refund("B2", "C3"))
    first = paused(alice, "Refund B2 and C3")
    assert [r["id"] for r in first["pause"]["requests"]] == ["action_1", "action_2"]
    rejected = {"id": "action_1", "approve": False, **({"message": message} if message else {})}
    answer = resume(alice, first["run_id"], {"decisions": [rejected, {"id": "action_2", "approve": True}]})
    said = message or "The person rejected the call of refund."
    assert agent_graphs.REFUNDED == ["C3"]
    assert answer.json()["result"] == f"Done: {said} / Order C3 refunded."


def test_each_action_needs_its_decision(alice, model_server) -> None:
    graph_agent(alice, model_server, graph="reviewed")
    model_server.reply_with(calls_refund("D4", "E5"))
    first = paused(alice, "Refund D4 and E5")
    answer = resume(alice, first["run_id"], {"decisions": [{"id": "action_2", "approve": True}]})
    assert answer.status_code == 400 and "action_1" in json.dumps(answer.json())
    assert agent_graphs.REFUNDED == [] and alice.get(f"/runs/{first['run_id']}").json()["status"] == "paused"


def test_a_resume_whose_paused_state_is_gone_fails(alice, model_server) -> None:
    graph_agent(alice, model_server)
    first = paused(alice, "book a flight")
    Session("s", tenant=alice.tenant.slug).delete_key(PAUSED, agent="g")  # as if removed behind our back
    answer = resume(alice, first["run_id"], {"input": "yes"})
    assert answer.status_code == 502 and "no paused run" in answer.json()["detail"]
    assert model_server.requests == []


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ({"action_requests": [{"name": "refund", "args": {"order": "1"}}]}, "approval"),
        ({"action_requests": []}, "input"),
        ({"action_requests": [{"name": "refund", "args": "1"}]}, "input"),
        ({"action_requests": [{"args": {}}]}, "input"),
        (["a", 1, None], "input"),
    ],
)
def test_only_a_value_shaped_as_actions_is_an_approval(value, kind) -> None:
    pause = pause_for(value)
    assert pause.kind == kind
    if kind == "input":
        assert pause.prompt == json.loads(json.dumps(value))
