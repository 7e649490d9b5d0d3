"""The ``openai_agents`` framework (the OpenAI Agents SDK) in process, against the project's model
server (a real HTTP server): config, tools, handoffs, history, failures, keys and tracing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from agents_app.frameworks import AgentSpec
from agents_app.frameworks.openai_agents_session import HandoffTool, WindowSession, history_items, run_entries
from agents_app.models import Agent, Run
from agents_app.runner import runner
from sessions_app.core import Session, SessionView
from sessions_app.stores.base import HANDOFF, TOOL_CALL, TOOL_RESULT, Message, Snapshot
from tests.agents_app.test_streaming import events_of
from tests.modelserver import ModelServer, Reply

SECRET = "sk-live-agents-0123456789abcdef"
TOOLS = {
    "get_weather": "tests.agent_tools.get_weather",
    "add": "tests.agent_tools.add",
    "broken": "tests.agent_tools.broken",
}


@pytest.fixture(autouse=True)
def tools(settings) -> None:
    """The tools this deployment declares (tests/agent_tools.py)."""
    settings.AK_AGENTS = {**settings.AK_AGENTS, "TOOLS": TOOLS}


def make_agent(alice, server: ModelServer, name: str = "bot", **config: Any) -> None:
    config = {"base_url": server.url, "model": "m1", **config}
    answer = alice.post("/agents", {"name": name, "framework": "openai_agents", "config": config})
    assert answer.status_code == 201, answer.json()


def run(alice, agent: str, message: str, session_id: str) -> Any:
    return alice.post("/run", {"agent": agent, "message": message, "session_id": session_id})


def entries(alice, session_id: str) -> list[dict[str, Any]]:
    return alice.get(f"/sessions/{session_id}/messages").json()["messages"]


def kinds(alice, session_id: str) -> list[str]:
    return [m.get("kind", m["role"]) for m in entries(alice, session_id)]


def answer_after_tool(text: str):
    """What the model server answers once the request ends with a tool's result."""
    return lambda body: Reply(text) if body["messages"][-1]["role"] == "tool" else None


# --- config --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"tools": ["launch_missiles"]}, "tools"),
        ({"tools": "get_weather"}, "tools"),
        ({"tools": ["get_weather", "get_weather"]}, "tools"),
        ({"api_key": "sk-literal"}, "api_key"),
        ({"temperature": 5}, "temperature"),
        ({"python": "os.system"}, "python"),
        ({"instructions": 3}, "instructions"),
        ({"handoffs": "billing"}, "handoffs"),
        ({"handoffs": ["../etc"]}, "handoffs"),
        ({"history": 501}, "history"),
        ({"max_turns": 0}, "max_turns"),
        ({"max_turns": 51}, "max_turns"),
        ({"model": ""}, "model"),
    ],
)
def test_a_bad_config_is_a_400_naming_its_key(alice, config, field) -> None:
    config = {"base_url": "https://api.example.com/v1", "model": "m", **config}
    answer = alice.post("/agents", {"name": "bad", "framework": "openai_agents", "config": config})
    assert answer.status_code == 400, answer.json()
    assert field in str(answer.json())


@pytest.mark.parametrize(
    ("path", "why"), [("tests.agent_tools.nowhere", "nowhere"), ("tests.agent_tools.NOT_A_FUNCTION", "not a function")]
)
def test_a_tool_that_does_not_load_is_refused_when_saved(alice, model_server, settings, path, why) -> None:
    settings.AK_AGENTS = {**settings.AK_AGENTS, "TOOLS": {**TOOLS, "gone": path}}
    config = {"base_url": model_server.url, "model": "m", "tools": ["gone"]}
    answer = alice.post("/agents", {"name": "bad", "framework": "openai_agents", "config": config})
    assert answer.status_code == 400 and "tools" in str(answer.json()) and why in str(answer.json())


def test_a_private_base_url_is_refused_when_saved_and_when_run(alice, model_server, settings) -> None:
    make_agent(alice, model_server)
    settings.AK_AGENTS = {**settings.AK_AGENTS, "ALLOW_PRIVATE_URLS": False}
    config = {"base_url": model_server.url, "model": "m"}
    refused = alice.post("/agents", {"name": "other", "framework": "openai_agents", "config": config})
    assert refused.status_code == 400 and "non-public" in str(refused.json())
    answer = run(alice, "bot", "hi", "s")
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed"
    assert "non-public" in answer.json()["detail"]
    assert model_server.requests == []


# --- conversations -------------------------------------------------------------------------------


def test_a_tool_call_is_run_and_recorded_as_items(alice, model_server) -> None:
    make_agent(alice, model_server, instructions="You know the weather.", tools=["get_weather"])
    model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    model_server.reply_with(answer_after_tool("Sunny in Paris, enjoy."))
    answer = run(alice, "bot", "Weather in Paris?", "w")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["result"] == "Sunny in Paris, enjoy."

    first, second = model_server.requests
    assert first.body["messages"] == [
        {"role": "system", "content": "You know the weather."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert [t["function"]["name"] for t in first.body["tools"]] == ["get_weather"]
    call_id = second.body["messages"][-2]["tool_calls"][0]["id"]
    assert second.body["messages"][-1] == {"role": "tool", "tool_call_id": call_id, "content": "It is sunny in Paris."}

    history = entries(alice, "w")
    assert [(m["role"], m.get("kind")) for m in history] == [
        ("user", None),
        ("assistant", "tool_call"),
        ("tool", "tool_result"),
        ("assistant", None),
    ]
    assert history[1]["data"] == {"call_id": call_id, "name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert history[1]["content"] == 'get_weather({"city": "Paris"})'
    assert history[2]["data"] == {"call_id": call_id, "output": "It is sunny in Paris."}
    assert history[2]["content"] == "It is sunny in Paris."
    assert history[3]["content"] == "Sunny in Paris, enjoy."

    run_record = alice.get(f"/runs/{answer.json()['run_id']}").json()
    assert run_record["usage"] == {"prompt_tokens": 20, "completion_tokens": 10}  # two model calls
    events = events_of(alice.get(f"/runs/{answer.json()['run_id']}/events"))
    deltas = [data["text"] for _, kind, data in events if kind == "delta"]
    assert len(deltas) > 1 and "".join(deltas) == "Sunny in Paris, enjoy."

    # The next turn shows the model the earlier call and its result, read back from the session.
    model_server.reply_with(None)
    assert run(alice, "bot", "And tomorrow?", "w").status_code == 200
    sent = model_server.last.body["messages"]
    assert sent[1:] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "It is sunny in Paris."},
        {"role": "assistant", "content": "Sunny in Paris, enjoy."},
        {"role": "user", "content": "And tomorrow?"},
    ]


def test_text_before_a_tool_call_is_part_of_the_reply_and_of_its_deltas(alice, model_server) -> None:
    make_agent(alice, model_server, tools=["add"])
    model_server.reply("Let me add.", tool_calls=[{"name": "add", "arguments": {"a": 2, "b": 3}}])
    model_server.reply_with(answer_after_tool("It is 5."))
    answer = run(alice, "bot", "2+3?", "t")
    assert answer.json()["result"] == "Let me add.\n\nIt is 5."
    events = events_of(alice.get(f"/runs/{answer.json()['run_id']}/events"))
    assert "".join(data["text"] for _, kind, data in events if kind == "delta") == answer.json()["result"]
    assert entries(alice, "t")[2]["data"]["output"] == "5"  # the async tool ran


def test_a_tool_that_raises_answers_the_model_with_its_error(alice, model_server) -> None:
    make_agent(alice, model_server, tools=["broken"])
    model_server.reply(tool_calls=[{"name": "broken", "arguments": {"reason": "on purpose"}}])
    model_server.reply_with(answer_after_tool("The tool failed, sorry."))
    answer = run(alice, "bot", "try it", "b")
    assert answer.status_code == 200 and answer.json()["result"] == "The tool failed, sorry."
    # The SDK tells the model that the tool failed, without the exception's text.
    assert model_server.last.body["messages"][-1]["content"].startswith("An error occurred while running the tool")
    assert kinds(alice, "b") == ["user", "tool_call", "tool_result", "assistant"]


def test_the_python_api_runs_it_without_streaming(alice, model_server) -> None:
    config = {"base_url": model_server.url, "model": "m1", "tools": ["get_weather"]}
    agent = AgentSpec("weather", "openai_agents", config)
    session = Session(id="py", tenant=alice.tenant.slug)
    model_server.reply("Checking.", tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    model_server.reply_with(answer_after_tool("Sunny in Oslo."))
    assert asyncio.run(runner.run(agent, session, "Oslo?")) == "Checking.\n\nSunny in Oslo."
    assert all("stream" not in request.body for request in model_server.requests)
    assert [m.kind for m in session.history()] == ["message", TOOL_CALL, TOOL_RESULT, "message"]


# --- handoffs ------------------------------------------------------------------------------------


def test_a_handoff_is_recorded_and_the_next_turn_starts_where_it_ended(alice, model_server) -> None:
    make_agent(alice, model_server, "billing", instructions="You do billing.", model="m-billing")
    make_agent(alice, model_server, "triage", instructions="You triage.", handoffs=["billing"])
    model_server.reply(tool_calls=[{"name": "transfer_to_billing", "arguments": {}}])
    model_server.reply("Billing here: you owe nothing.")
    answer = run(alice, "triage", "Do I owe money?", "h")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["result"] == "Billing here: you owe nothing."

    first, second = model_server.requests
    assert first.body["model"] == "m1" and first.body["messages"][0] == {"role": "system", "content": "You triage."}
    assert [t["function"]["name"] for t in first.body["tools"]] == ["transfer_to_billing"]
    assert second.body["model"] == "m-billing"
    assert second.body["messages"][0] == {"role": "system", "content": "You do billing."}

    history = entries(alice, "h")
    assert [m.get("kind", m["role"]) for m in history] == ["user", "handoff", "assistant"]
    assert history[1]["data"]["from"] == "triage" and history[1]["data"]["to"] == "billing"
    assert history[1]["content"] == "triage → billing"
    assert [m["agent"] for m in history] == ["triage", "triage", "billing"]  # billing wrote the reply
    assert Session(id="h", tenant=alice.tenant.slug).get("current_agent", agent="triage") == "billing"

    model_server.clear()
    model_server.reply("Still billing.")
    assert run(alice, "triage", "Are you sure?", "h").json()["result"] == "Still billing."
    (request,) = model_server.requests
    assert request.body["model"] == "m-billing"
    assert request.body["messages"][0] == {"role": "system", "content": "You do billing."}
    # It sees the handoff as the call and result the model made, in pairs.
    roles = [m["role"] for m in request.body["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]


def test_handoffs_may_go_round(alice, model_server) -> None:
    make_agent(alice, model_server, "billing", instructions="You do billing.")
    make_agent(alice, model_server, "triage", instructions="You triage.", handoffs=["billing"])
    config = {"base_url": model_server.url, "model": "m1", "instructions": "You do billing.", "handoffs": ["triage"]}
    assert alice.client.patch("/agents/billing", {"config": config}, format="json").status_code == 200
    model_server.reply(tool_calls=[{"name": "transfer_to_billing", "arguments": {}}])
    model_server.reply(tool_calls=[{"name": "transfer_to_triage", "arguments": {}}])
    model_server.reply("Back at triage.")
    assert run(alice, "triage", "help", "c").json()["result"] == "Back at triage."
    history = entries(alice, "c")
    assert [(m["data"]["from"], m["data"]["to"]) for m in history if m.get("kind") == "handoff"] == [
        ("triage", "billing"),
        ("billing", "triage"),
    ]
    model_server.clear()
    run(alice, "triage", "again", "c")
    assert model_server.requests[0].body["messages"][0]["content"] == "You triage."


@pytest.mark.parametrize("target", ["ghost", "echo"])
def test_a_handoff_to_no_openai_agents_agent_fails_the_run(alice, model_server, target) -> None:
    """Refused when the agent is saved (``test_agents_api``), and checked again by the run: as for
    an agent saved before its target was removed behind the API's back (the admin, a script)."""
    config = {"base_url": model_server.url, "model": "m1", "handoffs": [target]}
    refused = alice.post("/agents", {"name": "triage", "framework": "openai_agents", "config": config})
    assert refused.status_code == 400 and "config.handoffs[0]" in refused.json()["fields"]
    Agent.objects.create(tenant=alice.tenant, name="triage", framework="openai_agents", config=config)
    answer = run(alice, "triage", "hi", "g")
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed"
    assert f"'{target}'" in answer.json()["detail"] and "openai_agents" in answer.json()["detail"]
    assert model_server.requests == [] and entries(alice, "g") == []


# --- failures ------------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["status", "after_a_tool_call", "timeout", "max_turns"])
def test_a_failing_run_commits_nothing(alice, model_server, settings, failure) -> None:
    make_agent(alice, model_server, tools=["get_weather"], max_turns=3)
    assert run(alice, "bot", "first", "f").status_code == 200
    expected = "max_turns" if failure == "max_turns" else "model server"
    if failure == "status":
        model_server.fail(500, "the GPU caught fire")
        expected = "500: the GPU caught fire"
    elif failure == "after_a_tool_call":
        model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}])
        model_server.fail(503)
    elif failure == "timeout":
        settings.AK_AGENTS = {**settings.AK_AGENTS, "TIMEOUT": 0.3}
        model_server.reply("late", delay=3)
        expected = "did not answer within 0.3 s"
    else:
        model_server.reply_with(lambda body: Reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "X"}}]))
    answer = run(alice, "bot", "second", "f")
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed"
    assert expected in answer.json()["detail"]
    assert [m["content"] for m in entries(alice, "f")] == ["first", "reply to: first"]
    run_record = Run.objects.get(pk=answer.json()["run_id"])
    assert run_record.status == Run.Status.FAILED and run_record.error.startswith("ModelError")


def test_the_api_key_comes_from_a_secret_and_is_shown_nowhere(alice, model_server) -> None:
    assert alice.post("/secrets", {"name": "provider", "value": SECRET}).status_code == 201
    make_agent(alice, model_server, api_key={"secret": "provider"})
    answer = run(alice, "bot", "hi", "k")
    assert answer.status_code == 200
    assert model_server.last.headers["authorization"] == f"Bearer {SECRET}"
    model_server.fail(401, f"Incorrect API key provided: {SECRET}")
    failed = run(alice, "bot", "again", "k")
    assert failed.status_code == 502 and "401" in failed.json()["detail"]
    shown = [
        answer.content,
        failed.content,
        alice.get("/agents").content,
        alice.get("/secrets").content,
        alice.get(f"/runs/{answer.json()['run_id']}").content,
        alice.get(f"/runs/{failed.json()['run_id']}").content,
        json.dumps(events_of(alice.get(f"/runs/{failed.json()['run_id']}/events"))).encode(),
        alice.get("/sessions/k/messages").content,
    ]
    assert not [body for body in shown if SECRET.encode() in body]
    assert SECRET not in (Run.objects.get(pk=failed.json()["run_id"]).error or "")


def test_without_a_key_the_server_gets_a_placeholder(alice, model_server) -> None:
    make_agent(alice, model_server)
    assert run(alice, "bot", "hi", "n").status_code == 200
    assert model_server.last.headers["authorization"] == "Bearer unused"


def test_nothing_of_the_servers_openai_environment_reaches_a_tenants_server(alice, model_server, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-of-the-server")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-of-the-server")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-of-the-server")
    monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-admin-of-the-server")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "X-Server-Token: t0k3n\nAuthorization: Bearer sk-env")
    make_agent(alice, model_server)
    assert run(alice, "bot", "hi", "env").status_code == 200
    headers = model_server.last.headers
    assert "openai-organization" not in headers and "openai-project" not in headers
    assert "x-server-token" not in headers
    assert headers["authorization"] == "Bearer unused"
    assert not [value for value in headers.values() if "of-the-server" in value or "sk-env" in value]


# --- the session ---------------------------------------------------------------------------------


def test_the_model_sees_the_last_history_items_of_the_window(alice, model_server) -> None:
    for n in range(15):  # 30 earlier messages
        assert run(alice, "echo", f"m{n}", "long").status_code == 200
    make_agent(alice, model_server, instructions="Be brief.", history=4)
    assert run(alice, "bot", "now", "long").status_code == 200
    assert model_server.last.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "m13"},
        {"role": "assistant", "content": "echo[turns=14]: m13"},
        {"role": "user", "content": "m14"},
        {"role": "assistant", "content": "echo[turns=15]: m14"},
        {"role": "user", "content": "now"},
    ]


def test_two_frameworks_share_the_history_and_keep_their_own_state(alice, model_server) -> None:
    make_agent(alice, model_server, "billing")
    make_agent(alice, model_server, "triage", handoffs=["billing"])
    model_server.reply(tool_calls=[{"name": "transfer_to_billing", "arguments": {}}])
    model_server.reply("billing: hello")
    assert run(alice, "echo", "one", "mix").json()["result"] == "echo[turns=1]: one"
    assert run(alice, "triage", "two", "mix").json()["result"] == "billing: hello"
    assert model_server.requests[0].body["messages"][-3:] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "echo[turns=1]: one"},
        {"role": "user", "content": "two"},
    ]
    assert run(alice, "echo", "three", "mix").json()["result"] == "echo[turns=3]: three"
    assert run(alice, "triage", "four", "mix").json()["result"] == "reply to: four"
    sent = [(m["role"], m.get("content")) for m in model_server.last.body["messages"]]
    assert ("assistant", "echo[turns=3]: three") in sent and ("assistant", "billing: hello") in sent
    assert kinds(alice, "mix") == ["user", "assistant", "user", "handoff", "assistant"] + ["user", "assistant"] * 2

    session = Session(id="mix", tenant=alice.tenant.slug)
    assert session.get("current_agent", agent="triage") == "billing"
    assert session.get("current_agent", agent="echo") is None
    assert session.get("current_agent") is None  # not in the shared state either


def view_of(messages: list[Message], agent: str = "bot") -> SessionView:
    snapshot = Snapshot(version=1, messages=messages, offset=0, total=len(messages), role_counts={}, state={})
    return SessionView(snapshot, agent)


def said(text: str) -> dict[str, Any]:
    """An assistant's text as the session gives it to the SDK: the SDK's output message."""
    content = [{"type": "output_text", "text": text, "annotations": []}]
    return {"type": "message", "id": "ak_history", "role": "assistant", "status": "completed", "content": content}


def test_the_session_follows_the_sdks_protocol_on_a_buffer() -> None:
    from agents.memory import Session as SDKSession

    view = view_of([Message("user", "hi"), Message("assistant", "hello")])
    memory = WindowSession(view, history=20, handoffs={}, first="bot")
    assert isinstance(memory, SDKSession)

    async def exercise() -> None:
        assert await memory.get_items() == [{"role": "user", "content": "hi"}, said("hello")]
        await memory.add_items([{"role": "user", "content": "more"}])
        assert await memory.get_items(limit=1) == [{"role": "user", "content": "more"}]
        assert await memory.pop_item() == {"role": "user", "content": "more"}
        assert await memory.pop_item() is None  # what the history held is never popped
        assert len(await memory.get_items()) == 2
        with pytest.raises(NotImplementedError, match="DELETE /sessions"):
            await memory.clear_session()

    asyncio.run(exercise())
    memory.flush()
    assert view.items == []


def test_calls_and_results_cut_apart_by_the_window_are_left_out() -> None:
    call = Message("assistant", "f()", kind=TOOL_CALL, data={"call_id": "c1", "name": "f", "arguments": "{}"})
    result = Message("tool", "ok", kind=TOOL_RESULT, data={"call_id": "c1", "output": "ok"})
    foreign = Message("assistant", "x", kind=HANDOFF, data={"from": "a", "to": "b"})  # another framework's
    messages = [Message("user", "q"), call, result, foreign, Message("assistant", "a")]
    assert [i.get("type", i.get("role")) for i in history_items(messages, 10)] == [
        "user",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert history_items(messages, 2) == [said("a")]  # the call was cut off
    assert history_items(messages, 0) == []


def test_a_declined_handoff_stays_a_tool_call() -> None:
    transfer = json.dumps({"assistant": "billing"})
    handoffs = {"transfer_to_billing": HandoffTool("billing", transfer)}
    items = [
        {"type": "function_call", "call_id": "a", "name": "transfer_to_billing", "arguments": "{}"},
        {"type": "function_call", "call_id": "b", "name": "transfer_to_billing", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "a", "output": transfer},
        {"type": "function_call_output", "call_id": "b", "output": "Multiple handoffs detected, ignoring this one."},
    ]
    assert [(kind, agent) for kind, _, _, agent in run_entries(items, handoffs, "triage")] == [
        (HANDOFF, "triage"),
        (TOOL_CALL, "billing"),
        (TOOL_RESULT, "billing"),
    ]


# --- tracing -------------------------------------------------------------------------------------


class TraceRecorder:
    """An SDK trace processor that keeps the names of the traces begun (nothing leaves)."""

    def __init__(self) -> None:
        self.traces: list[str] = []

    def on_trace_start(self, trace: Any) -> None:
        self.traces.append(trace.name)

    def on_trace_end(self, trace: Any) -> None: ...

    def on_span_start(self, span: Any) -> None: ...

    def on_span_end(self, span: Any) -> None: ...

    def shutdown(self) -> None: ...

    def force_flush(self) -> None: ...


@pytest.fixture
def traces():
    from agents.tracing import set_trace_processors
    from agents.tracing.processors import default_processor

    recorder = TraceRecorder()
    set_trace_processors([recorder])
    yield recorder.traces
    set_trace_processors([default_processor()])


@pytest.mark.parametrize("tracing", [False, True])
def test_tracing_is_off_unless_configured(alice, model_server, settings, traces, tracing) -> None:
    settings.AK_AGENTS = {**settings.AK_AGENTS, "OPENAI_TRACING": tracing}
    make_agent(alice, model_server)
    assert run(alice, "bot", "hi", "tr").status_code == 200
    assert bool(traces) is tracing
