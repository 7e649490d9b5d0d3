"""``langgraph`` graphs that wait for a person (``interrupt``, mode checkpoint): the run pauses, and
goes on with ``Command(resume=...)`` from the checkpoint kept in the store, in a view of its own (as
another process would), on the project's model server. ``tests/pausing.py`` drives each step as
the runner does."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from agents_app.frameworks import AgentSpec, ApprovalRequest, Decision, Pause, Reply, Resume, Usage
from agents_app.frameworks.langgraph_run import PAUSED, pause_for
from agents_app.frameworks.model import ModelError
from sessions_app.core import Session
from sessions_app.stores.base import SessionKey
from tests import agent_graphs
from tests.modelserver import ModelServer
from tests.modelserver import Reply as ModelReply
from tests.pausing import Steps

GRAPHS = {"approval": "tests.agent_graphs.approval", "reviewed": "tests.agent_graphs.reviewed"}


@pytest.fixture(autouse=True)
def _graphs(settings) -> None:
    settings.AK_AGENTS = {**settings.AK_AGENTS, "GRAPHS": GRAPHS}
    agent_graphs.REFUNDED.clear()


def steps(alice, server: ModelServer, graph: str = "approval", session_id: str = "s", **options: Any) -> Steps:
    config = {"graph": graph, "mode": "checkpoint", "base_url": server.url, "model": "m1", "options": options}
    return Steps(AgentSpec("g", "langgraph", config), SessionKey(tenant=alice.tenant.slug, session_id=session_id))


def stored(alice, key: str, session_id: str = "s") -> Any:
    return Session(session_id, tenant=alice.tenant.slug).get(key, agent="g")


def history(alice, session_id: str = "s") -> list[tuple[str, str]]:
    entries = Session(session_id, tenant=alice.tenant.slug).history()
    return [(m.role if m.is_text else m.kind, m.content) for m in entries]


# --- a question ----------------------------------------------------------------------------------


@pytest.mark.parametrize("structured", [False, True])
def test_an_interrupt_pauses_for_input_and_the_resume_answers_it(alice, model_server, structured) -> None:
    run = steps(alice, model_server, structured=structured)
    pause = asyncio.run(run.run("book a flight"))
    question = {"question": "Shall I book a flight?"} if structured else "Shall I book a flight?"
    assert pause == Pause(kind="input", prompt=question)
    assert pause.as_dict() == {"kind": "input", "prompt": question}
    assert model_server.requests == []  # it asked before acting
    assert history(alice) == [("user", "book a flight")]
    checkpoint = stored(alice, "checkpoint")
    [(_, channel, interrupts)] = checkpoint["namespaces"][""]["writes"]
    assert channel == "__interrupt__" and interrupts[0]["$type"] == "interrupt"  # waiting, in the store

    reply = asyncio.run(run.resume(pause, Resume(input="yes")))
    assert reply == Reply("reply to: approval: yes", Usage(10, 5))
    assert [m["content"] for m in model_server.last.body["messages"]] == ["book a flight", "approval: yes"]
    assert history(alice) == [("user", "book a flight"), ("assistant", "reply to: approval: yes")]
    assert stored(alice, "checkpoint")["namespaces"][""]["writes"] == [] and stored(alice, PAUSED) is None

    # The graph's own history goes on from its checkpoint, and it asks again.
    again = asyncio.run(run.run("cancel it"))
    assert again.prompt == ({"question": "Shall I cancel it?"} if structured else "Shall I cancel it?")
    assert asyncio.run(run.resume(again, Resume(input={"answer": "no"}))).text == "reply to: approval: {'answer': 'no'}"
    assert [m["content"] for m in model_server.last.body["messages"]] == [
        "book a flight",
        "approval: yes",
        "reply to: approval: yes",
        "cancel it",
        "approval: {'answer': 'no'}",
    ]


def test_a_new_message_while_the_graph_waits_is_new_input(alice, model_server) -> None:
    """A paused run that was cancelled left its interrupt in the checkpoint: LangGraph drops it
    when new input comes, and runs the graph from its start."""
    run = steps(alice, model_server)
    asyncio.run(run.run("book a flight"))
    assert stored(alice, PAUSED) is not None
    pause = asyncio.run(run.run("book a train"))
    assert pause.prompt == "Shall I book a train?"
    assert asyncio.run(run.resume(pause, Resume(input="ok"))).text == "reply to: approval: ok"
    assert [m["content"] for m in model_server.last.body["messages"]] == [
        "book a flight",
        "book a train",
        "approval: ok",
    ]


def test_a_failing_resume_keeps_the_checkpoint_and_may_be_tried_again(alice, model_server) -> None:
    run = steps(alice, model_server)
    pause = asyncio.run(run.run("book a flight"))
    before = stored(alice, "checkpoint")
    model_server.fail(500, "the GPU caught fire")
    with pytest.raises(ModelError, match="500"):
        asyncio.run(run.resume(pause, Resume(input="yes")))
    assert stored(alice, "checkpoint") == before and history(alice) == [("user", "book a flight")]
    assert asyncio.run(run.resume(pause, Resume(input="yes"))).text == "reply to: approval: yes"


def test_resuming_without_a_paused_run_fails(alice, model_server) -> None:
    with pytest.raises(ModelError, match="no paused run"):
        asyncio.run(steps(alice, model_server).resume(Pause(kind="input", prompt="?"), Resume(input="yes")))
    assert model_server.requests == []


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
    run = steps(alice, model_server, graph="reviewed")
    model_server.reply_with(calls_refund("A1"))
    pause = asyncio.run(run.run("Refund A1"))
    assert pause == Pause(kind="approval", requests=(ApprovalRequest("action_1", "refund", {"order": "A1"}),))
    assert agent_graphs.REFUNDED == [] and history(alice) == [("user", "Refund A1")]
    assert stored(alice, PAUSED)["usage"] == [10, 5]

    reply = asyncio.run(run.resume(pause, Resume(decisions={"action_1": Decision(approve=True)})))
    assert agent_graphs.REFUNDED == ["A1"]  # once
    assert reply == Reply("Done: Order A1 refunded.", Usage(20, 10))  # both model calls
    assert [kind for kind, _ in history(alice)] == ["user", "tool_call", "tool_result", "assistant"]
    assert history(alice)[1:3] == [("tool_call", 'refund({"order": "A1"})'), ("tool_result", "Order A1 refunded.")]


@pytest.mark.parametrize("message", [None, "Not this one."])
def test_a_rejected_action_is_answered_with_the_rejection(alice, model_server, message) -> None:
    run = steps(alice, model_server, graph="reviewed")
    model_server.reply_with(calls_refund("B2", "C3"))
    pause = asyncio.run(run.run("Refund B2 and C3"))
    assert [r.id for r in pause.requests] == ["action_1", "action_2"]
    decisions = {"action_1": Decision(approve=False, message=message), "action_2": Decision(approve=True)}
    reply = asyncio.run(run.resume(pause, Resume(decisions=decisions)))
    rejected = message or "The person rejected the call of refund."
    assert agent_graphs.REFUNDED == ["C3"]
    assert reply.text == f"Done: {rejected} / Order C3 refunded."


def test_a_missing_decision_fails_the_resume(alice, model_server) -> None:
    run = steps(alice, model_server, graph="reviewed")
    model_server.reply_with(calls_refund("D4"))
    pause = asyncio.run(run.run("Refund D4"))
    with pytest.raises(ModelError, match="action_1"):
        asyncio.run(run.resume(pause, Resume(decisions={})))
    assert agent_graphs.REFUNDED == []


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
