"""``openai_agents`` tools that need a person's approval, through the API in process, on the
project's model server: the run pauses before the tool runs (``202``, ``pause``), its state kept in
the agent's own state in the store; ``POST /runs/<id>/resume`` goes on from there, reading it back
(the runner gives the adapter a new view of the session), each call approved or denied."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from agents_app.frameworks import Decision, Resume, get_framework
from agents_app.frameworks.openai_agents_pause import DENIED, PAUSED
from agents_app.models import Agent, Run
from agents_app.runner import RunOutcome, runner
from agents_app.runs.events import RunEvents
from sessions_app.core import Session
from sessions_app.stores import get_store
from sessions_app.stores.base import Message, SessionKey
from tests import agent_tools
from tests.agents_app.test_streaming import events_of
from tests.modelserver import ModelServer
from tests.modelserver import Reply as ModelReply

TOOLS = {"get_weather": "tests.agent_tools.get_weather", "refund": "tests.agent_tools.refund"}
SECRET = "sk-approval-0123456789abcdef"
REFUND = {"name": "refund", "needs_approval": True}


@pytest.fixture(autouse=True)
def tools(settings) -> None:
    settings.AK_AGENTS = {**settings.AK_AGENTS, "TOOLS": TOOLS}
    agent_tools.REFUNDS.clear()


def make_agent(alice, server: ModelServer, name: str = "bot", **config: Any) -> None:
    config = {"base_url": server.url, "model": "m1", "tools": [REFUND], **config}
    answer = alice.post("/agents", {"name": name, "framework": "openai_agents", "config": config})
    assert answer.status_code == 201, answer.json()


def run(alice, message: str, session_id: str = "s", agent: str = "bot", **extra: Any):
    return alice.post("/run", {"agent": agent, "message": message, "session_id": session_id, **extra})


def paused(alice, message: str, **extra: Any) -> dict[str, Any]:
    answer = run(alice, message, **extra)
    assert answer.status_code == 202, answer.json()
    assert answer.json()["status"] == "paused"
    return answer.json()


def resume(alice, run_id: str, *approved: str, **denied: str | None):
    decisions = [{"id": i, "approve": True} for i in approved]
    decisions += [{"id": i, "approve": False, **({"message": m} if m else {})} for i, m in denied.items()]
    return alice.post(f"/runs/{run_id}/resume", {"decisions": decisions})


def after_tool(text: str):
    """The model's answer once the request ends with a tool's result: ``text`` and that result."""

    def answer(body: dict[str, Any]) -> ModelReply | None:
        last = body["messages"][-1]
        return ModelReply(f"{text} ({last['content']})") if last["role"] == "tool" else None

    return answer


def history(alice, session_id: str = "s") -> list[tuple[str, str]]:
    entries = alice.get(f"/sessions/{session_id}/messages").json()["messages"]
    return [(m.get("kind", m["role"]), m["content"]) for m in entries]


def paused_state(alice, session_id: str = "s", agent: str = "bot") -> Any:
    return Session(session_id, tenant=alice.tenant.slug).get(PAUSED, agent=agent)


# --- config --------------------------------------------------------------------------------------


def test_a_tool_is_named_or_given_with_needs_approval(alice, model_server) -> None:
    make_agent(alice, model_server, tools=["get_weather", REFUND])
    items = get_framework("openai_agents").config_schema()["properties"]["tools"]["items"]
    name, entry = items["anyOf"]
    assert name["enum"] == entry["properties"]["name"]["enum"] == ["get_weather", "refund"]
    assert entry["required"] == ["name"] and entry["additionalProperties"] is False


@pytest.mark.parametrize(
    ("tools", "field"),
    [
        ([{"name": "refund", "needs_approval": "yes"}], "tools[0].needs_approval"),
        ([{"name": "refund", "ask": True}], "tools[0].ask"),
        ([{"name": "nowhere", "needs_approval": True}], "tools[0].name"),
        ([{"needs_approval": True}], "tools[0].name"),
        (["refund", REFUND], "tools[1].name"),
        ([["refund"]], "tools[0]"),
    ],
)
def test_a_bad_tool_entry_is_a_400_naming_it(alice, model_server, tools, field) -> None:
    config = {"base_url": model_server.url, "model": "m", "tools": tools}
    answer = alice.post("/agents", {"name": "bad", "framework": "openai_agents", "config": config})
    assert answer.status_code == 400, answer.json()
    assert f"config.{field}" in answer.json()["fields"], answer.json()


# --- approve and deny ----------------------------------------------------------------------------


def test_a_call_waits_for_approval_then_the_tool_runs_once(alice, model_server) -> None:
    make_agent(alice, model_server)
    model_server.reply("Let me refund it.", tool_calls=[{"name": "refund", "arguments": {"order": "A1"}}])
    model_server.reply_with(after_tool("Refunded."))

    first = paused(alice, "Refund order A1, please.")
    assert first["pause"] == {
        "kind": "approval",
        "requests": [{"id": "call_1", "tool": "refund", "arguments": {"order": "A1"}}],
    }
    assert agent_tools.REFUNDS == [] and len(model_server.requests) == 1  # it stopped before the tool
    assert history(alice) == [("user", "Refund order A1, please.")]
    kept = paused_state(alice)
    assert kept["start"] == "bot" and json.loads(json.dumps(kept)) == kept  # JSON, in the agent's own state

    answer = resume(alice, first["run_id"], "call_1")
    assert answer.status_code == 200, answer.json()
    reply = "Let me refund it.\n\nRefunded. (Order A1 refunded.)"
    assert answer.json() == {"result": reply, "session_id": "s", "run_id": first["run_id"]}
    assert agent_tools.REFUNDS == ["A1"]  # once
    second = model_server.requests[1].body["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "tool"]
    assert second[-1]["content"] == "Order A1 refunded."
    assert history(alice) == [
        ("user", "Refund order A1, please."),
        ("tool_call", 'refund({"order": "A1"})'),
        ("tool_result", "Order A1 refunded."),
        ("assistant", reply),
    ]
    assert paused_state(alice) is None
    shown = alice.get(f"/runs/{first['run_id']}").json()
    assert (shown["status"], shown["usage"]) == ("succeeded", {"prompt_tokens": 20, "completion_tokens": 10})
    events = events_of(alice.get(f"/runs/{first['run_id']}/events"))  # its log spans the pause
    assert [kind for _, kind, _ in events if kind != "delta"] == ["run", "paused", "run", "done"]
    assert "".join(data["text"] for _, kind, data in events if kind == "delta") == reply

    model_server.reply_with(None)  # the next turn shows the model the whole exchange
    assert run(alice, "Thanks").json()["result"] == "reply to: Thanks"
    sent = model_server.last.body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "user"]
    assert sent[3] == {"role": "assistant", "content": reply}


@pytest.mark.parametrize("message", [None, "Not this one: it was a gift."])
def test_a_denied_call_does_not_run_and_the_model_hears_the_denial(alice, model_server, message) -> None:
    make_agent(alice, model_server)
    model_server.reply(tool_calls=[{"name": "refund", "arguments": {"order": "B2"}}])
    model_server.reply_with(after_tool("I did not refund it."))
    answer = resume(alice, paused(alice, "Refund B2")["run_id"], call_1=message)

    denial = f"{DENIED} The person said: {message}" if message else DENIED
    assert agent_tools.REFUNDS == []
    assert model_server.last.body["messages"][-1]["content"] == denial
    assert answer.json()["result"] == f"I did not refund it. ({denial})"
    assert history(alice)[1:] == [
        ("tool_call", 'refund({"order": "B2"})'),
        ("tool_result", denial),
        ("assistant", answer.json()["result"]),
    ]


def test_two_calls_in_one_answer_each_get_their_decision(alice, model_server) -> None:
    make_agent(alice, model_server, tools=["get_weather", REFUND])
    calls = [
        {"name": "refund", "arguments": {"order": "C3"}},
        {"name": "get_weather", "arguments": {"city": "Oslo"}},
        {"name": "refund", "arguments": {"order": "D4"}},
    ]
    model_server.reply(tool_calls=calls)
    model_server.reply("Done.")
    first = paused(alice, "Refund C3 and D4; weather in Oslo?")
    requests = [(r["id"], r["arguments"]) for r in first["pause"]["requests"]]
    assert requests == [("call_1", {"order": "C3"}), ("call_3", {"order": "D4"})]
    unknown = resume(alice, first["run_id"], "call_2", call_1="no")  # the weather needs no approval
    assert unknown.status_code == 400 and agent_tools.REFUNDS == []
    answer = resume(alice, first["run_id"], "call_3", call_1="no")
    assert answer.json()["result"] == "Done." and agent_tools.REFUNDS == ["D4"]
    results = {m["tool_call_id"]: m["content"] for m in model_server.last.body["messages"] if m["role"] == "tool"}
    assert results == {
        "call_1": f"{DENIED} The person said: no",
        "call_2": "It is sunny in Oslo.",
        "call_3": "Order D4 refunded.",
    }


def test_a_run_may_pause_again_after_it_resumed(alice, model_server) -> None:
    make_agent(alice, model_server)
    model_server.reply("First E5.", tool_calls=[{"name": "refund", "arguments": {"order": "E5"}}])
    model_server.reply("Then F6.", tool_calls=[{"name": "refund", "arguments": {"order": "F6"}}])
    model_server.reply("Both refunded.")
    run_id = paused(alice, "Refund E5 then F6")["run_id"]
    again = resume(alice, run_id, "call_1")
    assert again.status_code == 202 and again.json()["status"] == "paused", again.json()
    [request] = again.json()["pause"]["requests"]
    assert request["arguments"] == {"order": "F6"} and agent_tools.REFUNDS == ["E5"]
    assert history(alice) == [("user", "Refund E5 then F6")]  # nothing more until the run completes

    answer = resume(alice, run_id, request["id"])
    assert answer.json()["result"] == "First E5.\n\nThen F6.\n\nBoth refunded."
    assert agent_tools.REFUNDS == ["E5", "F6"]
    kinds = [kind for kind, _ in history(alice)]
    assert kinds == ["user", "tool_call", "tool_result", "tool_call", "tool_result", "assistant"]
    usage = alice.get(f"/runs/{run_id}").json()["usage"]
    assert usage == {"prompt_tokens": 30, "completion_tokens": 15}


def streamed_pause_and_resume(
    agent: Agent, message: str, answer: Resume
) -> tuple[RunOutcome, list[str], RunOutcome, list[str]]:
    """A run streamed through the runner until it pauses, then its resume, streamed too (as
    ``runs.execute`` makes them; over HTTP in the live tests): each outcome and its deltas."""
    key = SessionKey(tenant=agent.tenant.slug, session_id="s")

    async def streamed(step: Callable[[RunEvents], Awaitable[RunOutcome]]) -> tuple[RunOutcome, list[str]]:
        events = RunEvents(get_store(), key, "run-1", listener=asyncio.Queue())
        outcome = await step(events)
        await events.close()
        pieces = []
        while not events.listener.empty():
            event = events.listener.get_nowait()
            pieces += [event.data["text"]] if event.kind == "delta" else []
        return outcome, pieces

    first, before = asyncio.run(
        streamed(lambda events: runner.execute(agent, key, message, run_id="run-1", events=events))
    )
    assert first.pause is not None, first

    def resume(events: RunEvents) -> Awaitable[RunOutcome]:
        return runner.execute_resume(
            agent, key, first.pause, answer, run_id="run-1", commit_id="run-1.1", events=events
        )

    done, after = asyncio.run(streamed(resume))
    return first, before, done, after


def test_a_streamed_run_streams_what_it_says_before_and_after_its_pause(alice, model_server) -> None:
    make_agent(alice, model_server)
    model_server.reply("Checking the order.", tool_calls=[{"name": "refund", "arguments": {"order": "G7"}}])
    model_server.reply("Refunded, all good.")
    agent = Agent.objects.get(tenant=alice.tenant, name="bot")
    answer = Resume(decisions={"call_1": Decision(approve=True)})
    _, before, done, after = streamed_pause_and_resume(agent, "Refund G7", answer)
    assert "".join(before) == "Checking the order." and after[0] == "\n\n"
    assert "".join(before + after) == done.reply == "Checking the order.\n\nRefunded, all good."
    assert agent_tools.REFUNDS == ["G7"]
    assert all(request.body.get("stream") for request in model_server.requests)


def test_a_tool_of_the_agent_handed_to_pauses_and_the_run_goes_on_there(alice, model_server) -> None:
    make_agent(alice, model_server, "billing", model="m-billing")
    make_agent(alice, model_server, "triage", model="m-triage", tools=[], handoffs=["billing"])
    model_server.reply(tool_calls=[{"name": "transfer_to_billing", "arguments": {}}])
    model_server.reply(tool_calls=[{"name": "refund", "arguments": {"order": "M3"}}])
    model_server.reply("Billing: refunded.")
    first = paused(alice, "Refund M3", agent="triage")
    assert [r["tool"] for r in first["pause"]["requests"]] == ["refund"]
    assert paused_state(alice, agent="triage")["start"] == "triage"
    answer = resume(alice, first["run_id"], first["pause"]["requests"][0]["id"])
    assert answer.json()["result"] == "Billing: refunded." and agent_tools.REFUNDS == ["M3"]
    assert [r.body["model"] for r in model_server.requests] == ["m-triage", "m-billing", "m-billing"]
    entries = alice.get("/sessions/s/messages").json()["messages"]
    assert [m.get("kind", m["role"]) for m in entries] == ["user", "handoff", "tool_call", "tool_result", "assistant"]
    assert entries[-1]["agent"] == "billing"
    assert Session("s", tenant=alice.tenant.slug).get("current_agent", agent="triage") == "billing"


# --- what is kept, and failures ------------------------------------------------------------------


def test_the_paused_run_keeps_no_secret(alice, model_server) -> None:
    assert alice.post("/secrets", {"name": "provider", "value": SECRET}).status_code == 201
    make_agent(alice, model_server, api_key={"secret": "provider"})
    model_server.reply(tool_calls=[{"name": "refund", "arguments": {"order": "H8"}}])
    paused(alice, "Refund H8")
    assert model_server.last.headers["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in json.dumps(paused_state(alice))


def test_a_new_run_that_cancels_the_paused_one_starts_afresh(alice, model_server) -> None:
    make_agent(alice, model_server)
    model_server.reply(tool_calls=[{"name": "refund", "arguments": {"order": "J9"}}])
    run_id = paused(alice, "Refund J9")["run_id"]
    assert run(alice, "Never mind.").json()["code"] == "run_paused"
    answer = run(alice, "Never mind.", on_paused="cancel")
    assert answer.status_code == 200 and answer.json()["result"] == "reply to: Never mind."
    assert alice.get(f"/runs/{run_id}").json()["status"] == "cancelled"
    assert paused_state(alice) is None and agent_tools.REFUNDS == []
    assert model_server.last.body["messages"] == [
        {"role": "user", "content": "Refund J9"},
        {"role": "user", "content": "Never mind."},
    ]


def test_a_resume_whose_paused_state_is_gone_fails_and_runs_nothing(alice, model_server) -> None:
    make_agent(alice, model_server)
    model_server.reply(tool_calls=[{"name": "refund", "arguments": {"order": "K1"}}])
    run_id = paused(alice, "Refund K1")["run_id"]
    Session("s", tenant=alice.tenant.slug).delete_key(PAUSED, agent="bot")  # as if removed behind our back
    answer = resume(alice, run_id, "call_1")
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed"
    assert "no paused run" in answer.json()["detail"]
    assert agent_tools.REFUNDS == [] and len(model_server.requests) == 1
    assert Run.objects.get(pk=run_id).status == Run.Status.FAILED


def test_a_paused_run_over_the_limit_fails_and_commits_nothing(alice, model_server) -> None:
    make_agent(alice, model_server, history=500)
    key = Session("s", tenant=alice.tenant.slug)
    for n in range(25):  # a long window: the model is sent it, and the paused run's state holds it
        said = [Message("user", "x" * 12_000, "bot"), Message("assistant", f"ok {n}", "bot")]
        key.store.commit(key.key, expected_version=None, append=said)
    model_server.reply(tool_calls=[{"name": "refund", "arguments": {"order": "L2"}}])
    answer = run(alice, "Refund L2")
    assert answer.status_code == 502 and "MAX_PAUSED_BYTES" in answer.json()["detail"]
    assert len(key.history(limit=100)) == 50 and paused_state(alice) is None
