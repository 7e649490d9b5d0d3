"""The ``pydantic_ai`` framework (PydanticAI) in process, against the project's model server (a
real HTTP server): config, a tool call, history both ways, streaming, usage, failures, its own
state on a shared session, and a run paused for approval then resumed."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from agents_app.frameworks import AgentSpec, Decision, Pause, Reply, Resume, get_framework
from agents_app.models import Run
from sessions_app.core import Session, SessionView
from sessions_app.stores import get_store
from sessions_app.stores.base import SHARED_SCOPE, SessionKey
from tests.agents_app.test_streaming import events_of
from tests.modelserver import ModelServer
from tests.modelserver import Reply as ModelReply

TOOLS = {
    "get_weather": "tests.agent_tools.get_weather",
    "add": "tests.agent_tools.add",
    "broken": "tests.agent_tools.broken",
    "where_am_i": "tests.agent_tools.where_am_i",
    "whoami": "tests.agent_tools.whoami",
    "whoami_deps": "tests.pydantic_ai_tools.whoami_deps",
}


@pytest.fixture(autouse=True)
def tools(settings) -> None:
    settings.AK_AGENTS = {**settings.AK_AGENTS, "TOOLS": TOOLS}


def make_agent(alice, server: ModelServer, name: str = "pyd", **config: Any) -> None:
    config = {"base_url": server.url, "model": "m1", **config}
    answer = alice.post("/agents", {"name": name, "framework": "pydantic_ai", "config": config})
    assert answer.status_code == 201, answer.json()


def run(alice, agent: str, message: str, session_id: str) -> Any:
    return alice.post("/run", {"agent": agent, "message": message, "session_id": session_id})


def entries(alice, session_id: str) -> list[dict[str, Any]]:
    return alice.get(f"/sessions/{session_id}/messages").json()["messages"]


def answer_after_tool(text: str):
    return lambda body: ModelReply(text) if body["messages"][-1]["role"] == "tool" else None


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"tools": ["launch_missiles"]}, "tools"),
        ({"tools": ["add", "add"]}, "tools"),
        ({"approval": ["add"]}, "approval"),
        ({"api_key": "sk-literal"}, "api_key"),
        ({"max_requests": 0}, "max_requests"),
        ({"instructions": 3}, "instructions"),
        ({"code": True}, "code"),
    ],
)
def test_a_bad_config_is_a_400_naming_its_key(alice, config, field) -> None:
    config = {"base_url": "https://api.example.com/v1", "model": "m", **config}
    answer = alice.post("/agents", {"name": "bad", "framework": "pydantic_ai", "config": config})
    assert answer.status_code == 400, answer.json()
    assert field in str(answer.json())


def test_a_tool_made_for_the_agents_sdks_context_is_refused(alice, model_server) -> None:
    config = {"base_url": model_server.url, "model": "m", "tools": ["whoami"]}
    answer = alice.post("/agents", {"name": "bad", "framework": "pydantic_ai", "config": config})
    assert answer.status_code == 400 and "RunContextWrapper" in str(answer.json())


def test_a_tool_call_is_run_recorded_streamed_and_shown_to_the_next_turn(alice, model_server) -> None:
    make_agent(alice, model_server, instructions="You know the weather.", tools=["get_weather"])
    model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    model_server.reply_with(answer_after_tool("Sunny in Paris, enjoy."))
    answer = run(alice, "pyd", "Weather in Paris?", "w")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["result"] == "Sunny in Paris, enjoy."

    first, second = model_server.requests
    assert first.body["messages"][0] == {"role": "system", "content": "You know the weather."}
    assert first.body["messages"][-1]["content"] == "Weather in Paris?"
    assert [t["function"]["name"] for t in first.body["tools"]] == ["get_weather"]
    assert second.body["messages"][-1]["role"] == "tool"
    assert second.body["messages"][-1]["content"] == "It is sunny in Paris."

    history = entries(alice, "w")
    assert [(m["role"], m.get("kind")) for m in history] == [
        ("user", None),
        ("assistant", "tool_call"),
        ("tool", "tool_result"),
        ("assistant", None),
    ]
    call_id = history[1]["data"]["call_id"]
    assert history[1]["data"] == {"call_id": call_id, "name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert history[2]["data"]["output"] == "It is sunny in Paris." and history[2]["data"]["call_id"] == call_id

    record = alice.get(f"/runs/{answer.json()['run_id']}").json()
    assert record["usage"] == {"prompt_tokens": 20, "completion_tokens": 10}  # two model calls
    events = events_of(alice.get(f"/runs/{answer.json()['run_id']}/events"))
    deltas = [data["text"] for _, kind, data in events if kind == "delta"]
    assert len(deltas) > 1 and "".join(deltas) == "Sunny in Paris, enjoy."
    assert all(request.body.get("stream") for request in model_server.requests)

    # The next turn shows the model the earlier call and its result, read back from the session.
    model_server.reply_with(None)
    assert run(alice, "pyd", "And tomorrow?", "w").json()["result"] == "reply to: And tomorrow?"
    sent = model_server.last.body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert sent[2]["tool_calls"][0]["id"] == call_id and sent[3]["tool_call_id"] == call_id


def test_text_before_a_tool_call_and_an_async_tool(alice, model_server) -> None:
    make_agent(alice, model_server, tools=["add"])
    model_server.reply("Let me add.", tool_calls=[{"name": "add", "arguments": {"a": 2, "b": 3}}])
    model_server.reply_with(answer_after_tool("It is 5."))
    answer = run(alice, "pyd", "2+3?", "t")
    assert answer.json()["result"] == "Let me add.\n\nIt is 5."
    events = events_of(alice.get(f"/runs/{answer.json()['run_id']}/events"))
    assert "".join(data["text"] for _, kind, data in events if kind == "delta") == answer.json()["result"]
    assert entries(alice, "t")[2]["data"]["output"] == "5"


def test_a_tool_knows_its_tenant_and_the_python_api_runs_it_unstreamed(alice, model_server) -> None:
    config = {"base_url": model_server.url, "model": "m1", "tools": ["where_am_i"]}
    agent = AgentSpec("pyd", "pydantic_ai", config)
    session = Session(id="py", tenant=alice.tenant.slug)
    model_server.reply(tool_calls=[{"name": "where_am_i", "arguments": {}}])
    model_server.reply_with(answer_after_tool("Done."))
    from agents_app.runner import runner

    assert asyncio.run(runner.run(agent, session, "who?")) == "Done."
    assert not any(request.body.get("stream") for request in model_server.requests)
    result = next(m for m in session.history() if m.kind == "tool_result")
    assert result.data["output"] == f"tenant={alice.tenant.slug} session=py agent=pyd"


def test_a_tool_taking_pydantic_ais_run_context_gets_the_call_as_its_deps(alice, model_server) -> None:
    make_agent(alice, model_server, tools=["whoami_deps"])
    model_server.reply(tool_calls=[{"name": "whoami_deps", "arguments": {"greeting": "hi"}}])
    model_server.reply_with(answer_after_tool("Done."))
    assert run(alice, "pyd", "who?", "deps").json()["result"] == "Done."
    (tool,) = model_server.requests[0].body["tools"]
    assert list(tool["function"]["parameters"]["properties"]) == ["greeting"]  # the model never sees ctx
    assert entries(alice, "deps")[2]["data"]["output"] == f"hi tenant={alice.tenant.slug} session=deps agent=pyd"


@pytest.mark.parametrize("failure", ["status", "after_a_tool_call", "max_requests", "broken_stream"])
def test_a_failing_run_commits_nothing(alice, model_server, failure) -> None:
    make_agent(alice, model_server, tools=["get_weather"], max_requests=3)
    assert run(alice, "pyd", "first", "f").status_code == 200
    expected = "model server"
    if failure == "status":
        model_server.fail(500, "the GPU caught fire")
        expected = "500"
    elif failure == "after_a_tool_call":
        model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}])
        model_server.fail(503)
        expected = "503"
    elif failure == "max_requests":
        model_server.reply_with(
            lambda body: ModelReply(tool_calls=[{"name": "get_weather", "arguments": {"city": "X"}}])
        )
        expected = "max_requests"
    else:
        model_server.fail_mid_stream(after_chunks=2)
    answer = run(alice, "pyd", "second", "f")
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed", answer.json()
    assert expected in answer.json()["detail"]
    assert [m["content"] for m in entries(alice, "f")] == ["first", "reply to: first"]
    assert Run.objects.get(pk=answer.json()["run_id"]).status == Run.Status.FAILED
    assert Session(id="f", tenant=alice.tenant.slug).get("pending", agent="pyd") is None


def test_the_api_key_comes_from_a_secret_and_stays_out_of_errors(alice, model_server) -> None:
    secret = "sk-pyd-0123456789abcdef"
    assert alice.post("/secrets", {"name": "provider", "value": secret}).status_code == 201
    make_agent(alice, model_server, api_key={"secret": "provider"})
    assert run(alice, "pyd", "hi", "k").status_code == 200
    assert model_server.last.headers["authorization"] == f"Bearer {secret}"
    model_server.fail(401, f"Incorrect API key provided: {secret}")
    failed = run(alice, "pyd", "again", "k")
    assert failed.status_code == 502 and "401" in failed.json()["detail"]
    assert secret not in failed.content.decode() and secret not in (Run.objects.get(pk=failed.json()["run_id"]).error)


def test_a_private_base_url_is_refused_when_run(alice, model_server, settings) -> None:
    make_agent(alice, model_server)
    settings.AK_AGENTS = {**settings.AK_AGENTS, "ALLOW_PRIVATE_URLS": False}
    answer = run(alice, "pyd", "hi", "p")
    assert answer.status_code == 502 and "non-public" in answer.json()["detail"]
    assert model_server.requests == []


def test_its_own_state_is_kept_apart_on_a_shared_session(alice, model_server) -> None:
    make_agent(alice, model_server, "pyd")
    make_agent(alice, model_server, "pyd2")
    assert run(alice, "echo", "one", "mix").status_code == 200
    assert run(alice, "pyd", "two", "mix").json()["result"] == "reply to: two"
    assert run(alice, "pyd2", "three", "mix").json()["result"] == "reply to: three"
    # Each sees the shared history, the echo agent's turn included.
    sent = [(m["role"], m["content"]) for m in model_server.last.body["messages"]]
    assert sent == [
        ("user", "one"),
        ("assistant", "echo[turns=1]: one"),
        ("user", "two"),
        ("assistant", "reply to: two"),
        ("user", "three"),
    ]
    session = Session(id="mix", tenant=alice.tenant.slug)
    first, second = session.get("conversation_id", agent="pyd"), session.get("conversation_id", agent="pyd2")
    assert first and second and first != second
    assert session.get("conversation_id", agent="echo") is None and session.get("conversation_id") is None
    assert run(alice, "pyd", "four", "mix").status_code == 200
    assert Session(id="mix", tenant=alice.tenant.slug).get("conversation_id", agent="pyd") == first


# --- pausing for approval --------------------------------------------------------------------


def _turn(agent: AgentSpec, key: SessionKey, step, deltas: list[str] | None = None) -> Any:
    """One step (``run`` or ``resume``) on a view of the stored session (streamed into ``deltas``),
    committed through the store as the runner commits a run (its items and state; a pause's too)."""
    store = get_store()
    snapshot = store.load(key, scopes=(SHARED_SCOPE, agent.name), window=40)
    view = SessionView(snapshot, agent.name, key=key, on_delta=deltas.append if deltas is not None else None)
    outcome = asyncio.run(step(view))
    store.commit(key, expected_version=snapshot.version, append=view.items, state=view.changes())
    return outcome


@pytest.mark.parametrize(("approve", "streamed"), [(True, False), (False, False), (True, True)])
def test_a_tool_needing_approval_pauses_and_resume_goes_on(alice, model_server, approve, streamed) -> None:
    config = {"base_url": model_server.url, "model": "m1", "tools": ["get_weather"], "approval": ["get_weather"]}
    agent = AgentSpec("pyd", "pydantic_ai", config)
    framework = get_framework("pydantic_ai")
    key = SessionKey(alice.tenant.slug, "hitl")
    model_server.reply("Let me check.", tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    before: list[str] | None = [] if streamed else None

    pause = _turn(agent, key, lambda view: framework.run(agent, view, "Weather in Oslo?"), before)
    assert isinstance(pause, Pause) and pause.kind == "approval"
    (request,) = pause.requests
    assert request.tool == "get_weather" and request.arguments == {"city": "Oslo"}
    assert len(model_server.requests) == 1  # the tool has not run
    pending = Session(id="hitl", tenant=alice.tenant.slug).get("pending", agent="pyd")
    assert pending["requests"] == [{"id": request.id, "tool": "get_weather"}]

    model_server.reply_with(
        lambda body: (
            ModelReply(f"heard: {body['messages'][-1]['content']}") if body["messages"][-1]["role"] == "tool" else None
        )
    )
    answer = Resume(decisions={request.id: Decision(approve=approve, message="Not today.")})
    after: list[str] | None = [] if streamed else None
    reply = _turn(agent, key, lambda view: framework.resume(agent, view, pause, answer), after)
    assert isinstance(reply, Reply)
    expected = "It is sunny in Oslo." if approve else "Not today."
    assert reply.text == f"Let me check.\n\nheard: {expected}"  # the reply goes on from before the pause
    if streamed:
        assert "".join(before + after) == reply.text  # the deltas of both add up to the reply
    assert reply.usage is not None and reply.usage.prompt_tokens == 20  # both model calls
    stored = Session(id="hitl", tenant=alice.tenant.slug)
    assert stored.get("pending", agent="pyd") is None
    items = [(m.kind, m.data.get("output")) for m in stored.history()]
    assert items == [("tool_call", None), ("tool_result", expected)]


def test_without_its_library_an_agent_is_a_400_naming_what_to_install(alice, monkeypatch) -> None:
    """As on a deployment without requirements/pydantic_ai.txt (``None`` in ``sys.modules``: cannot be imported)."""
    monkeypatch.setitem(sys.modules, "pydantic_ai", None)
    config = {"base_url": "https://api.example.com/v1", "model": "m"}
    answer = alice.post("/agents", {"name": "x", "framework": "pydantic_ai", "config": config})
    assert answer.status_code == 400 and "requirements/pydantic_ai.txt" in str(answer.json())
    assert "framework" in answer.json()["fields"]


def test_the_model_options_reach_the_server(alice, model_server) -> None:
    make_agent(alice, model_server, temperature=0.2, max_tokens=50)
    assert run(alice, "pyd", "hi", "opt").status_code == 200
    body = model_server.last.body
    assert (body["model"], body["temperature"], body.get("max_tokens") or body.get("max_completion_tokens")) == (
        "m1",
        0.2,
        50,
    )
