"""The ``google_adk`` framework (Google ADK's ``Runner``) in process, against the project's model
server (a real HTTP server): config, a tool call, streaming, usage, history kept as ADK's events,
state scopes, failures that commit nothing, and a tool's approval paused and resumed."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

pytest.importorskip("google.adk")

from agents_app.frameworks import AgentSpec, Decision, Pause, Reply, Resume, get_framework
from agents_app.frameworks.context import CallContext
from agents_app.frameworks.google_adk_run import bound
from agents_app.frameworks.google_adk_session import ADK_KEY
from sessions_app.core import Session, SessionView
from sessions_app.stores import get_store
from sessions_app.stores.base import SHARED_SCOPE, TOOL_CALL, TOOL_RESULT, Message, SessionKey
from tests.agents_app.test_streaming import events_of
from tests.modelserver import ModelServer
from tests.modelserver import Reply as ModelReply

TOOLS = {
    "get_weather": "tests.agent_tools.get_weather",
    "remember": "tests.adk_tools.remember",
    "whoami": "tests.adk_tools.whoami",
    "broken": "tests.agent_tools.broken",
    "remember_a_set": "tests.adk_tools.remember_a_set",
}


@pytest.fixture(autouse=True)
def tools(settings) -> None:
    settings.AK_AGENTS = {**settings.AK_AGENTS, "TOOLS": TOOLS}


def make_agent(alice, server: ModelServer, name: str = "adk", **config: Any) -> None:
    config = {"base_url": server.url, "model": "m1", **config}
    answer = alice.post("/agents", {"name": name, "framework": "google_adk", "config": config})
    assert answer.status_code == 201, answer.json()


def run(alice, agent: str, message: str, session_id: str, **extra: Any) -> Any:
    return alice.post("/run", {"agent": agent, "message": message, "session_id": session_id, **extra})


def entries(alice, session_id: str) -> list[dict[str, Any]]:
    return alice.get(f"/sessions/{session_id}/messages").json()["messages"]


def after_tool(text: str):
    """What the model server answers once the request ends with a tool's result."""
    return lambda body: ModelReply(text) if body["messages"][-1]["role"] == "tool" else None


# --- config --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"tools": ["launch_missiles"]}, "tools"),
        ({"tools": "get_weather"}, "tools"),
        ({"approval": ["get_weather"]}, "approval"),  # not one of its tools
        ({"api_key": "sk-literal"}, "api_key"),
        ({"instructions": 3}, "instructions"),
        ({"history": -1}, "history"),
        ({"python": "os.system"}, "python"),
        ({"model": ""}, "model"),
    ],
)
def test_a_bad_config_is_a_400_naming_its_key(alice, config, field) -> None:
    config = {"base_url": "https://api.example.com/v1", "model": "m", **config}
    answer = alice.post("/agents", {"name": "bad", "framework": "google_adk", "config": config})
    assert answer.status_code == 400, answer.json()
    assert field in str(answer.json())


def test_without_adk_installed_an_agent_is_refused_naming_what_to_install(alice, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "google.adk", None)  # as if the package were not there
    config = {"base_url": "https://api.example.com/v1", "model": "m"}
    answer = alice.post("/agents", {"name": "adk", "framework": "google_adk", "config": config})
    assert answer.status_code == 400
    assert "requirements/google_adk.txt" in str(answer.json())


def test_a_tool_kept_for_other_tenants_does_not_exist_for_this_one(alice, model_server, settings) -> None:
    settings.AK_AGENTS = {**settings.AK_AGENTS, "TOOL_TENANTS": {"whoami": frozenset({"someone-else"})}}
    config = {"base_url": model_server.url, "model": "m", "tools": ["get_weather", "whoami"]}
    answer = alice.post("/agents", {"name": "adk", "framework": "google_adk", "config": config})
    assert answer.status_code == 400 and "tools[1]" in str(answer.json()), answer.json()
    assert "whoami" not in str(answer.json()).split("offers:")[-1]


def test_a_private_base_url_is_refused_when_saved_and_when_run(alice, model_server, settings) -> None:
    make_agent(alice, model_server)
    settings.AK_AGENTS = {**settings.AK_AGENTS, "ALLOW_PRIVATE_URLS": False}
    config = {"base_url": model_server.url, "model": "m"}
    refused = alice.post("/agents", {"name": "other", "framework": "google_adk", "config": config})
    assert refused.status_code == 400 and "non-public" in str(refused.json())
    answer = run(alice, "adk", "hi", "s")  # the guarded client refuses to connect
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed"
    assert "non-public" in answer.json()["detail"]
    assert model_server.requests == []


def test_the_api_key_is_sent_and_kept_out_of_errors_and_logs(alice, model_server, caplog) -> None:
    secret = "sk-adk-0123456789abcdef"
    assert alice.post("/secrets", {"name": "provider", "value": secret}).status_code == 201
    make_agent(alice, model_server, api_key={"secret": "provider"})
    assert run(alice, "adk", "hi", "k").status_code == 200
    assert model_server.last.headers["authorization"] == f"Bearer {secret}"
    model_server.fail(401, f"Incorrect API key provided: {secret}")
    answer = run(alice, "adk", "again", "k")
    assert answer.status_code == 502 and "401" in answer.json()["detail"]
    assert secret not in str(answer.json()) and secret not in alice.get(f"/runs/{answer.json()['run_id']}").text
    assert caplog.records and not [r.name for r in caplog.records if secret in r.getMessage() + str(r.exc_info)]


# --- conversations -------------------------------------------------------------------------------


def test_a_tool_call_is_run_recorded_streamed_and_counted(alice, model_server) -> None:
    make_agent(alice, model_server, instructions="You know the weather.", tools=["get_weather"])
    model_server.reply("Let me check.", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    model_server.reply_with(after_tool("Sunny in Paris, enjoy."))
    answer = run(alice, "adk", "Weather in Paris?", "w")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["result"] == "Let me check.\n\nSunny in Paris, enjoy."

    first, second = model_server.requests
    assert first.body["messages"][0]["role"] == "system"
    assert first.body["messages"][0]["content"].startswith("You know the weather.")
    assert first.body["messages"][1:] == [{"role": "user", "content": "Weather in Paris?"}]
    assert [t["function"]["name"] for t in first.body["tools"]] == ["get_weather"]
    call_id = second.body["messages"][-2]["tool_calls"][0]["id"]
    assert second.body["messages"][-1]["tool_call_id"] == call_id
    assert "It is sunny in Paris." in second.body["messages"][-1]["content"]

    history = entries(alice, "w")
    assert [m.get("kind", m["role"]) for m in history] == ["user", "tool_call", "tool_result", "assistant"]
    assert history[1]["data"] == {"call_id": call_id, "name": "get_weather", "arguments": {"city": "Paris"}}
    assert history[1]["content"] == 'get_weather({"city": "Paris"})'
    assert history[2]["data"]["output"] == "It is sunny in Paris."

    run_record = alice.get(f"/runs/{answer.json()['run_id']}").json()
    assert run_record["usage"] == {"prompt_tokens": 20, "completion_tokens": 10}  # two model calls
    events = events_of(alice.get(f"/runs/{answer.json()['run_id']}/events"))
    deltas = [data["text"] for _, kind, data in events if kind == "delta"]
    assert len(deltas) > 2 and "".join(deltas) == answer.json()["result"]

    # The next turn shows the model the earlier exchange, read back from ADK's events in its state.
    model_server.reply_with(None)
    assert run(alice, "adk", "And tomorrow?", "w").status_code == 200
    roles = [m["role"] for m in model_server.last.body["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert model_server.last.body["messages"][-1] == {"role": "user", "content": "And tomorrow?"}


def test_history_keeps_only_the_latest_events_from_a_users_message_on(alice, model_server) -> None:
    make_agent(alice, model_server, history=3)
    for n in range(3):
        assert run(alice, "adk", f"q{n}", "h").status_code == 200
    sent = [(m["role"], m["content"]) for m in model_server.last.body["messages"][1:]]
    # 3 events kept after the second turn: q1, its answer (the first turn's answer alone is dropped).
    assert sent == [("user", "q1"), ("assistant", "reply to: q1"), ("user", "q2")]
    stored = Session(id="h", tenant=alice.tenant.slug).get(ADK_KEY, agent="adk")
    assert len(stored["events"]) == 2  # q2 and its answer: a turn is never cut in half


def test_a_run_streams_the_model_s_answer_as_it_comes(alice, model_server) -> None:
    make_agent(alice, model_server)
    model_server.reply("one two three four")
    answer = run(alice, "adk", "count", "s")
    events = events_of(alice.get(f"/runs/{answer.json()['run_id']}/events"))
    deltas = [data["text"] for _, kind, data in events if kind == "delta"]
    assert len(deltas) > 1 and "".join(deltas) == "one two three four" == answer.json()["result"]
    assert model_server.last.body["stream"] is True


def test_a_tool_gets_the_runs_context_not_from_the_model(alice, model_server) -> None:
    make_agent(alice, model_server, tools=["whoami"])
    model_server.reply(tool_calls=[{"name": "whoami", "arguments": {"greeting": "hi"}}])
    model_server.reply_with(after_tool("done"))
    answer = run(alice, "adk", "who?", "ctx")
    assert answer.status_code == 200, answer.json()
    (declared,) = model_server.requests[0].body["tools"]
    assert list(declared["function"]["parameters"]["properties"]) == ["greeting"]
    output = entries(alice, "ctx")[2]["data"]["output"]
    assert output == f"hi tenant={alice.tenant.slug} session=ctx run={answer.json()['run_id']} agent=adk"


def test_the_python_api_runs_it_without_streaming(alice, model_server) -> None:
    from agents_app.runner import runner

    config = {"base_url": model_server.url, "model": "m1", "tools": ["get_weather"]}
    agent = AgentSpec("weather", "google_adk", config)
    session = Session(id="py", tenant=alice.tenant.slug)
    model_server.reply("Checking.", tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    model_server.reply_with(after_tool("Sunny in Oslo."))
    assert asyncio.run(runner.run(agent, session, "Oslo?")) == "Checking.\n\nSunny in Oslo."
    assert all(not request.body.get("stream") for request in model_server.requests)
    assert [m.kind for m in session.history()] == ["message", TOOL_CALL, TOOL_RESULT, "message"]


def test_bound_keeps_a_plain_functions_signature() -> None:
    from tests.agent_tools import add

    context = CallContext(tenant="t", session_id="s", run_id=None, agent="a")
    tool = bound("adder", add, context)
    assert tool.__name__ == "adder" and list(__import__("inspect").signature(tool).parameters) == ["a", "b"]
    assert asyncio.run(tool(a=2, b=3)) == 5


# --- state ---------------------------------------------------------------------------------------


def test_each_agents_adk_state_is_its_own_and_user_and_app_keys_are_the_sessions(alice, model_server) -> None:
    make_agent(alice, model_server, "first", tools=["remember"])
    make_agent(alice, model_server, "second", tools=["remember"])
    model_server.reply(tool_calls=[{"name": "remember", "arguments": {"note": "blue"}}])
    model_server.reply("noted blue")
    assert run(alice, "first", "remember blue", "shared").status_code == 200
    model_server.reply(tool_calls=[{"name": "remember", "arguments": {"note": "red"}}])
    model_server.reply("noted red")
    assert run(alice, "second", "remember red", "shared").status_code == 200

    key = SessionKey(alice.tenant.slug, "shared")
    state = get_store().load(key, scopes=(SHARED_SCOPE, "first", "second"), window=0).state
    assert state["first"][ADK_KEY]["state"] == {"note": "blue"}
    assert state["second"][ADK_KEY]["state"] == {"note": "red"}
    texts = lambda agent: [  # noqa: E731
        part.get("text") for e in state[agent][ADK_KEY]["events"] for part in e["content"]["parts"] if "text" in part
    ]
    assert texts("first") == ["remember blue", "noted blue"]
    assert texts("second") == ["remember red", "noted red"]
    # user: and app: keys are the session's shared state (the second saw the first's count).
    assert state[SHARED_SCOPE] == {"user:note": "red", "app:notes": 2}
    # temp: keys are kept nowhere, not even in the events' state deltas.
    assert "temp:scratch" not in str(state)


def test_a_failing_server_commits_nothing(alice, model_server) -> None:
    make_agent(alice, model_server, tools=["get_weather"])
    assert run(alice, "adk", "first", "f").status_code == 200
    before = Session(id="f", tenant=alice.tenant.slug).get(ADK_KEY, agent="adk")

    def call_then_fail(body: dict[str, Any]) -> ModelReply:
        model_server.reply_with(None)
        model_server.fail(500, "overloaded")  # the next call, once the tool has run
        return ModelReply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])

    model_server.reply_with(call_then_fail)
    answer = run(alice, "adk", "second", "f")
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed", answer.json()
    assert "500" in answer.json()["detail"]
    assert len(model_server.requests) == 3  # the tool ran between the two calls of the failed run
    # Neither the tool's call and result, nor ADK's events, nor the user's message are kept.
    assert [m["content"] for m in entries(alice, "f")] == ["first", "reply to: first"]
    assert Session(id="f", tenant=alice.tenant.slug).get(ADK_KEY, agent="adk") == before


def test_state_that_is_not_json_fails_the_run_and_commits_nothing(alice, model_server) -> None:
    make_agent(alice, model_server, tools=["remember_a_set"])
    model_server.reply(tool_calls=[{"name": "remember_a_set", "arguments": {"note": "x"}}])
    model_server.reply("kept?")
    answer = run(alice, "adk", "keep x", "j")
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed", answer.json()
    assert "not JSON" in answer.json()["detail"]
    assert entries(alice, "j") == []


# --- approval ------------------------------------------------------------------------------------


def adapter_turn(tenant: str, session_id: str, agent: AgentSpec, work) -> Any:
    """One step of the adapter on the stored session, committed as the runner commits it."""
    store = get_store()
    key = SessionKey(tenant, session_id)
    snapshot = store.load(key, scopes=(SHARED_SCOPE, agent.name), window=0)
    view = SessionView(snapshot, agent.name, key=key)
    outcome = asyncio.run(work(get_framework("google_adk"), view))
    appended = list(view.items)
    if isinstance(outcome, Reply):
        appended.append(Message("assistant", outcome.text, agent.name))
    store.commit(key, expected_version=snapshot.version, append=appended, state=view.changes())
    return outcome


@pytest.mark.parametrize("approve", [True, False])
def test_a_tool_needing_approval_pauses_and_resumes(alice, model_server, approve) -> None:
    config = {"base_url": model_server.url, "model": "m1", "tools": ["get_weather"], "approval": ["get_weather"]}
    agent = AgentSpec("careful", "google_adk", config)
    tenant = alice.tenant.slug
    model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}])
    paused = adapter_turn(tenant, "p", agent, lambda fw, view: fw.run(agent, view, "Weather in Rome?"))
    assert isinstance(paused, Pause) and paused.kind == "approval"
    (request,) = paused.requests
    assert (request.tool, request.arguments) == ("get_weather", {"city": "Rome"})
    assert len(model_server.requests) == 1  # the tool did not run, nothing more was asked

    model_server.reply_with(after_tool("Here you go."))
    answer = Resume(decisions={request.id: Decision(approve=approve)})
    done = adapter_turn(tenant, "p", agent, lambda fw, view: fw.resume(agent, view, paused, answer))
    assert isinstance(done, Reply) and done.text == "Here you go."
    tool_answer = model_server.last.body["messages"][-1]
    assert tool_answer["role"] == "tool" and tool_answer["tool_call_id"] == request.id
    history = Session(id="p", tenant=tenant).history()
    results = [m for m in history if m.kind == TOOL_RESULT]
    if approve:
        assert "It is sunny in Rome." in tool_answer["content"]
        assert [m.data["output"] for m in results] == ["It is sunny in Rome."]  # it ran once
    else:
        assert "rejected" in tool_answer["content"]  # the model hears the denial; the tool did not run
        assert [m.data["output"] for m in results] == ['{"error": "This tool call is rejected."}']
    assert [m.kind for m in history] == [TOOL_CALL, TOOL_RESULT, "message"]


def test_a_new_message_lets_a_cancelled_approval_go(alice, model_server) -> None:
    config = {"base_url": model_server.url, "model": "m1", "tools": ["get_weather"], "approval": ["get_weather"]}
    agent = AgentSpec("careful", "google_adk", config)
    tenant = alice.tenant.slug
    model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}])
    assert isinstance(adapter_turn(tenant, "c", agent, lambda fw, view: fw.run(agent, view, "Rome?")), Pause)
    # The paused run was cancelled; the session's next message is answered.
    done = adapter_turn(tenant, "c", agent, lambda fw, view: fw.run(agent, view, "Never mind. Hello?"))
    assert isinstance(done, Reply) and done.text == "reply to: Never mind. Hello?"
    sent = model_server.last.body["messages"]
    assert sent[-1] == {"role": "user", "content": "Never mind. Hello?"}
    # The model sees the call as ADK left it: answered that it waited for a confirmation.
    (call,) = [i for i, m in enumerate(sent) if m.get("tool_calls")]
    assert sent[call + 1]["role"] == "tool" and sent[call + 1]["tool_call_id"] == sent[call]["tool_calls"][0]["id"]
    assert "requires confirmation" in sent[call + 1]["content"]
    assert Session(id="c", tenant=tenant).get("adk_pending", agent="careful") is None
