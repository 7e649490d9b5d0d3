"""``openai_agents`` tools that need a person's approval: the run pauses before the tool runs, and
goes on from the state it kept in the store, in a view of its own (as another process would), on
the project's model server. ``tests/pausing.py`` drives each step as the runner does."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from agents_app.frameworks import AgentSpec, ApprovalRequest, Decision, Pause, Reply, Resume, Usage, get_framework
from agents_app.frameworks.model import ModelError
from agents_app.frameworks.openai_agents_pause import DENIED, PAUSED
from sessions_app.core import Session
from sessions_app.stores.base import Message, SessionKey
from tests import agent_tools
from tests.modelserver import ModelServer
from tests.modelserver import Reply as ModelReply
from tests.pausing import Steps

TOOLS = {"get_weather": "tests.agent_tools.get_weather", "refund": "tests.agent_tools.refund"}
SECRET = "sk-approval-0123456789abcdef"


@pytest.fixture(autouse=True)
def tools(settings) -> None:
    settings.AK_AGENTS = {**settings.AK_AGENTS, "TOOLS": TOOLS}
    agent_tools.REFUNDS.clear()


def approving(server: ModelServer, name: str = "bot", **config: Any) -> AgentSpec:
    tools = config.pop("tools", [{"name": "refund", "needs_approval": True}])
    return AgentSpec(name, "openai_agents", {"base_url": server.url, "model": "m1", "tools": tools, **config})


def steps(alice, agent: AgentSpec, session_id: str = "s", **options: Any) -> Steps:
    return Steps(agent, SessionKey(tenant=alice.tenant.slug, session_id=session_id), **options)


def after_tool(text: str):
    """The model's answer once the request ends with a tool's result: ``text`` and that result."""
    return lambda body: (
        ModelReply(f"{text} ({body['messages'][-1]['content']})") if body["messages"][-1]["role"] == "tool" else None
    )


def history(alice, session_id: str = "s") -> list[tuple[str, str]]:
    return [
        (m.kind if not m.is_text else m.role, m.content)
        for m in Session(session_id, tenant=alice.tenant.slug).history()
    ]


def paused_state(alice, session_id: str = "s", agent: str = "bot") -> Any:
    return Session(session_id, tenant=alice.tenant.slug).get(PAUSED, agent=agent)


def approve(*ids: str, **denied: str | None) -> Resume:
    decisions = {i: Decision(approve=True) for i in ids}
    decisions |= {i: Decision(approve=False, message=message) for i, message in denied.items()}
    return Resume(decisions=decisions)


# --- config --------------------------------------------------------------------------------------


def test_a_tool_is_named_or_given_with_needs_approval(alice, model_server) -> None:
    config = {
        "base_url": model_server.url,
        "model": "m",
        "tools": ["get_weather", {"name": "refund", "needs_approval": True}],
    }
    answer = alice.post("/agents", {"name": "ok", "framework": "openai_agents", "config": config})
    assert answer.status_code == 201, answer.json()
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
        (["refund", {"name": "refund", "needs_approval": True}], "tools[1].name"),
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
    agent = approving(model_server)
    run = steps(alice, agent)
    model_server.reply("Let me refund it.", tool_calls=[{"name": "refund", "arguments": {"order": "A1"}}])
    model_server.reply_with(after_tool("Refunded."))

    pause = asyncio.run(run.run("Refund order A1, please."))
    assert pause == Pause(kind="approval", requests=(ApprovalRequest("call_1", "refund", {"order": "A1"}),))
    assert pause.as_dict() == {
        "kind": "approval",
        "requests": [{"id": "call_1", "tool": "refund", "arguments": {"order": "A1"}}],
    }
    assert agent_tools.REFUNDS == [] and len(model_server.requests) == 1  # it stopped before the tool
    assert history(alice) == [("user", "Refund order A1, please.")]
    assert json.loads(json.dumps(paused_state(alice))) == paused_state(alice)  # JSON, in the agent's own state

    reply = asyncio.run(run.resume(pause, approve("call_1")))
    assert agent_tools.REFUNDS == ["A1"]  # once
    assert reply == Reply("Let me refund it.\n\nRefunded. (Order A1 refunded.)", reply.usage, agent="bot")
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (20, 10)  # both model calls
    second = model_server.requests[1].body["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "tool"]
    assert second[-1]["content"] == "Order A1 refunded."
    assert history(alice) == [
        ("user", "Refund order A1, please."),
        ("tool_call", 'refund({"order": "A1"})'),
        ("tool_result", "Order A1 refunded."),
        ("assistant", reply.text),
    ]
    assert paused_state(alice) is None

    model_server.reply_with(None)  # the next turn shows the model the whole exchange
    assert asyncio.run(run.run("Thanks")) == Reply("reply to: Thanks", Usage(10, 5), agent="bot")
    sent = model_server.last.body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "user"]
    assert sent[3] == {"role": "assistant", "content": reply.text}


@pytest.mark.parametrize("message", [None, "Not this one: it was a gift."])
def test_a_denied_call_does_not_run_and_the_model_hears_the_denial(alice, model_server, message) -> None:
    run = steps(alice, approving(model_server))
    model_server.reply(tool_calls=[{"name": "refund", "arguments": {"order": "B2"}}])
    model_server.reply_with(after_tool("I did not refund it."))
    pause = asyncio.run(run.run("Refund B2"))
    reply = asyncio.run(run.resume(pause, approve(call_1=message)))

    denial = f"{DENIED} The person said: {message}" if message else DENIED
    assert agent_tools.REFUNDS == []
    assert model_server.last.body["messages"][-1]["content"] == denial
    assert reply.text == f"I did not refund it. ({denial})"
    assert history(alice)[1:] == [
        ("tool_call", 'refund({"order": "B2"})'),
        ("tool_result", denial),
        ("assistant", reply.text),
    ]


def test_two_calls_in_one_answer_each_get_their_decision(alice, model_server) -> None:
    run = steps(alice, approving(model_server, tools=["get_weather", {"name": "refund", "needs_approval": True}]))
    calls = [
        {"name": "refund", "arguments": {"order": "C3"}},
        {"name": "get_weather", "arguments": {"city": "Oslo"}},
        {"name": "refund", "arguments": {"order": "D4"}},
    ]
    model_server.reply(tool_calls=calls)
    model_server.reply("Done.")
    pause = asyncio.run(run.run("Refund C3 and D4; weather in Oslo?"))
    assert [(r.id, r.arguments) for r in pause.requests] == [("call_1", {"order": "C3"}), ("call_3", {"order": "D4"})]
    reply = asyncio.run(run.resume(pause, approve("call_3", call_1="no")))
    assert reply.text == "Done." and agent_tools.REFUNDS == ["D4"]
    results = {m["tool_call_id"]: m["content"] for m in model_server.last.body["messages"] if m["role"] == "tool"}
    assert results == {
        "call_1": f"{DENIED} The person said: no",
        "call_2": "It is sunny in Oslo.",
        "call_3": "Order D4 refunded.",
    }


def test_a_run_may_pause_again_after_it_resumed(alice, model_server) -> None:
    run = steps(alice, approving(model_server))
    model_server.reply("First E5.", tool_calls=[{"name": "refund", "arguments": {"order": "E5"}}])
    model_server.reply("Then F6.", tool_calls=[{"name": "refund", "arguments": {"order": "F6"}}])
    model_server.reply("Both refunded.")
    first = asyncio.run(run.run("Refund E5 then F6"))
    second = asyncio.run(run.resume(first, approve("call_1")))
    assert isinstance(second, Pause) and second.requests[0].arguments == {"order": "F6"}
    assert agent_tools.REFUNDS == ["E5"]
    assert history(alice) == [("user", "Refund E5 then F6")]  # nothing more until the run completes
    reply = asyncio.run(run.resume(second, approve(second.requests[0].id)))
    assert reply.text == "First E5.\n\nThen F6.\n\nBoth refunded." and agent_tools.REFUNDS == ["E5", "F6"]
    kinds = [kind for kind, _ in history(alice)]
    assert kinds == ["user", "tool_call", "tool_result", "tool_call", "tool_result", "assistant"]
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (30, 15)


def test_a_streamed_run_streams_what_it_says_before_and_after_its_pause(alice, model_server) -> None:
    run = steps(alice, approving(model_server), streamed=[])
    model_server.reply("Checking the order.", tool_calls=[{"name": "refund", "arguments": {"order": "G7"}}])
    model_server.reply("Refunded, all good.")
    pause = asyncio.run(run.run("Refund G7"))
    reply = asyncio.run(run.resume(pause, approve("call_1")))
    before, after = run.streamed
    assert "".join(before) == "Checking the order." and after[0] == "\n\n"
    assert "".join(before + after) == reply.text == "Checking the order.\n\nRefunded, all good."
    assert agent_tools.REFUNDS == ["G7"]


def test_a_tool_of_the_agent_handed_to_pauses_and_the_run_goes_on_there(alice, model_server) -> None:
    billing = {
        "base_url": model_server.url,
        "model": "m-billing",
        "tools": [{"name": "refund", "needs_approval": True}],
    }
    triage = {"base_url": model_server.url, "model": "m-triage", "handoffs": ["billing"]}
    for name, config in (("billing", billing), ("triage", triage)):
        assert alice.post("/agents", {"name": name, "framework": "openai_agents", "config": config}).status_code == 201
    run = steps(alice, AgentSpec("triage", "openai_agents", triage))
    model_server.reply(tool_calls=[{"name": "transfer_to_billing", "arguments": {}}])
    model_server.reply(tool_calls=[{"name": "refund", "arguments": {"order": "M3"}}])
    model_server.reply("Billing: refunded.")
    pause = asyncio.run(run.run("Refund M3"))
    assert [r.tool for r in pause.requests] == ["refund"] and paused_state(alice, agent="triage") is not None
    reply = asyncio.run(run.resume(pause, approve(pause.requests[0].id)))
    assert reply.text == "Billing: refunded." and reply.agent == "billing" and agent_tools.REFUNDS == ["M3"]
    assert [r.body["model"] for r in model_server.requests] == ["m-triage", "m-billing", "m-billing"]
    assert [kind for kind, _ in history(alice)] == ["user", "handoff", "tool_call", "tool_result", "assistant"]
    assert Session("s", tenant=alice.tenant.slug).get("current_agent", agent="triage") == "billing"


# --- what is kept --------------------------------------------------------------------------------


def test_the_paused_run_keeps_no_secret(alice, model_server) -> None:
    assert alice.post("/secrets", {"name": "provider", "value": SECRET}).status_code == 201
    run = steps(alice, approving(model_server, api_key={"secret": "provider"}))
    model_server.reply(tool_calls=[{"name": "refund", "arguments": {"order": "H8"}}])
    asyncio.run(run.run("Refund H8"))
    assert model_server.last.headers["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in json.dumps(paused_state(alice))


def test_a_new_run_forgets_a_paused_run_that_was_cancelled(alice, model_server) -> None:
    run = steps(alice, approving(model_server))
    model_server.reply(tool_calls=[{"name": "refund", "arguments": {"order": "J9"}}])
    asyncio.run(run.run("Refund J9"))
    assert paused_state(alice) is not None
    # The runner refuses a new run while one is paused; once it is cancelled, the next one starts afresh.
    assert asyncio.run(run.run("Never mind.")) == Reply("reply to: Never mind.", Usage(10, 5), agent="bot")
    assert paused_state(alice) is None and agent_tools.REFUNDS == []
    assert model_server.last.body["messages"] == [
        {"role": "user", "content": "Refund J9"},
        {"role": "user", "content": "Never mind."},
    ]


def test_resuming_without_a_paused_run_fails(alice, model_server) -> None:
    run = steps(alice, approving(model_server))
    pause = Pause(kind="approval", requests=(ApprovalRequest("call_1", "refund", {"order": "K1"}),))
    with pytest.raises(ModelError, match="no paused run"):
        asyncio.run(run.resume(pause, approve("call_1")))
    assert agent_tools.REFUNDS == [] and model_server.requests == []


def test_a_paused_run_over_the_limit_fails(alice, model_server) -> None:
    run = steps(alice, approving(model_server, history=500))
    for n in range(25):  # a long window: each of its messages goes into the paused run's state
        said = [Message("user", "x" * 12_000, "bot"), Message("assistant", f"ok {n}", "bot")]
        Session("s", tenant=alice.tenant.slug).store.commit(run.key, expected_version=None, append=said)
    model_server.reply(tool_calls=[{"name": "refund", "arguments": {"order": "L2"}}])
    with pytest.raises(ModelError, match="MAX_PAUSED_BYTES"):
        asyncio.run(run.run("Refund L2"))
    assert paused_state(alice) is None
