"""The ``smolagents`` framework (a smolagents ``ToolCallingAgent``) in process, against the
project's model server (a real HTTP server): config (no code execution), a tool call and its
memory steps as items, history, usage, failures, and its own state on a shared session."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from agents_app.frameworks import AgentSpec
from agents_app.models import Run
from agents_app.runner import runner
from sessions_app.core import Session
from tests.modelserver import ModelServer
from tests.modelserver import Reply as ModelReply

TOOLS = {
    "get_weather": "tests.agent_tools.get_weather",
    "add": "tests.agent_tools.add",
    "broken": "tests.agent_tools.broken",
    "where_am_i": "tests.agent_tools.where_am_i",
    "whoami": "tests.agent_tools.whoami",
}


@pytest.fixture(autouse=True)
def tools(settings) -> None:
    settings.AK_AGENTS = {**settings.AK_AGENTS, "TOOLS": TOOLS}


def make_agent(alice, server: ModelServer, name: str = "smol", **config: Any) -> None:
    config = {"base_url": server.url, "model": "m1", **config}
    answer = alice.post("/agents", {"name": name, "framework": "smolagents", "config": config})
    assert answer.status_code == 201, answer.json()


def run(alice, agent: str, message: str, session_id: str) -> Any:
    return alice.post("/run", {"agent": agent, "message": message, "session_id": session_id})


def entries(alice, session_id: str) -> list[dict[str, Any]]:
    return alice.get(f"/sessions/{session_id}/messages").json()["messages"]


def final(text: str) -> ModelReply:
    """The model's answer that ends a smolagents run: a call of its ``final_answer`` tool."""
    return ModelReply(tool_calls=[{"name": "final_answer", "arguments": {"answer": text}}])


def after_observation(text: str):
    """Answer ``text`` once the request ends with a tool's observation (smolagents sends it as a
    user message), else the default."""

    def answer(body: dict[str, Any]) -> ModelReply | None:
        last = body["messages"][-1]
        content = last["content"] if isinstance(last["content"], str) else last["content"][0]["text"]
        return final(text) if content.startswith("Observation:") else None

    return answer


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"tools": ["launch_missiles"]}, "tools"),
        ({"max_steps": 0}, "max_steps"),
        ({"agent": "code"}, "agent"),
        ({"agent": "managed"}, "agent"),
        ({"api_key": "sk-literal"}, "api_key"),
    ],
)
def test_a_bad_config_is_a_400_naming_its_key(alice, config, field) -> None:
    config = {"base_url": "https://api.example.com/v1", "model": "m", **config}
    answer = alice.post("/agents", {"name": "bad", "framework": "smolagents", "config": config})
    assert answer.status_code == 400, answer.json()
    assert field in str(answer.json())


def test_a_code_agent_is_refused_without_a_sandbox(alice) -> None:
    config = {"base_url": "https://api.example.com/v1", "model": "m", "agent": "code"}
    answer = alice.post("/agents", {"name": "coder", "framework": "smolagents", "config": config})
    assert answer.status_code == 400 and "AK_AGENTS__SMOLAGENTS_SANDBOX" in str(answer.json())


def test_a_tool_made_for_the_agents_sdks_context_is_refused(alice, model_server) -> None:
    config = {"base_url": model_server.url, "model": "m", "tools": ["whoami"]}
    answer = alice.post("/agents", {"name": "bad", "framework": "smolagents", "config": config})
    assert answer.status_code == 400 and "current_call" in str(answer.json())


def test_a_tool_call_is_run_and_its_steps_recorded_as_items(alice, model_server) -> None:
    make_agent(alice, model_server, instructions="You know the weather.", tools=["get_weather"])
    model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    model_server.reply_with(after_observation("Sunny in Paris, enjoy."))
    answer = run(alice, "smol", "Weather in Paris?", "w")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["result"] == "Sunny in Paris, enjoy."

    first, second = model_server.requests
    assert "You know the weather." in str(first.body["messages"][0]["content"])
    assert sorted(t["function"]["name"] for t in first.body["tools"]) == ["final_answer", "get_weather"]
    assert "It is sunny in Paris." in str(second.body["messages"][-1]["content"])

    history = entries(alice, "w")
    assert [(m["role"], m.get("kind")) for m in history] == [
        ("user", None),
        ("assistant", "tool_call"),
        ("tool", "tool_result"),
        ("assistant", None),
    ]
    call = history[1]["data"]
    assert call["name"] == "get_weather" and call["arguments"] == '{"city": "Paris"}' and call["step"] == 1
    assert history[2]["data"] == {"call_id": call["call_id"], "output": "It is sunny in Paris."}
    record = alice.get(f"/runs/{answer.json()['run_id']}").json()
    assert record["usage"] == {"prompt_tokens": 20, "completion_tokens": 10}

    # The next turn starts from the session's messages, as memory steps.
    model_server.reply_with(lambda body: final("Tomorrow too."))
    assert run(alice, "smol", "And tomorrow?", "w").json()["result"] == "Tomorrow too."
    sent = str(model_server.last.body["messages"])
    assert "Weather in Paris?" in sent and "Sunny in Paris, enjoy." in sent and "And tomorrow?" in sent


def test_an_async_tool_and_a_tool_that_knows_its_tenant(alice, model_server) -> None:
    config = {"base_url": model_server.url, "model": "m1", "tools": ["add", "where_am_i"]}
    agent = AgentSpec("smol", "smolagents", config)
    session = Session(id="py", tenant=alice.tenant.slug)
    model_server.reply(tool_calls=[{"name": "add", "arguments": {"a": 2, "b": 3}}])
    model_server.reply(tool_calls=[{"name": "where_am_i", "arguments": {}}])
    model_server.reply_with(after_observation("Done."))
    assert asyncio.run(runner.run(agent, session, "go")) == "Done."
    outputs = [m.data["output"] for m in session.history() if m.kind == "tool_result"]
    assert outputs == ["5", f"tenant={alice.tenant.slug} session=py agent=smol"]


def test_a_tool_that_raises_is_an_error_step_the_model_hears(alice, model_server) -> None:
    make_agent(alice, model_server, tools=["broken"])
    model_server.reply(tool_calls=[{"name": "broken", "arguments": {"reason": "on purpose"}}])
    model_server.reply_with(
        lambda body: final("The tool failed.") if "Error" in str(body["messages"][-1]["content"]) else None
    )
    answer = run(alice, "smol", "try it", "b")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["result"] == "The tool failed."
    history = entries(alice, "b")
    assert history[2]["kind"] == "tool_result" and "the tool broke: on purpose" in history[2]["data"]["output"]


@pytest.mark.parametrize("failure", ["status", "after_a_tool_call", "timeout"])
def test_a_failing_run_commits_nothing(alice, model_server, settings, failure) -> None:
    make_agent(alice, model_server, tools=["get_weather"])
    model_server.reply_with(lambda body: final("ok"))
    assert run(alice, "smol", "first", "f").status_code == 200
    expected = "model server"
    if failure == "status":
        model_server.fail(500, "the GPU caught fire")
        expected = "500"
    elif failure == "after_a_tool_call":
        model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}])
        model_server.fail(503)
        expected = "503"
    else:
        settings.AK_AGENTS = {**settings.AK_AGENTS, "TIMEOUT": 0.3}
        model_server.reply("late", delay=3)
        expected = "did not answer within 0.3 s"
    answer = run(alice, "smol", "second", "f")
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed", answer.json()
    assert expected in answer.json()["detail"]
    assert [m["content"] for m in entries(alice, "f")] == ["first", "ok"]
    assert Run.objects.get(pk=answer.json()["run_id"]).status == Run.Status.FAILED


def test_the_api_key_comes_from_a_secret_and_stays_out_of_errors(alice, model_server) -> None:
    secret = "sk-smol-0123456789abcdef"
    assert alice.post("/secrets", {"name": "provider", "value": secret}).status_code == 201
    make_agent(alice, model_server, api_key={"secret": "provider"})
    model_server.reply_with(lambda body: final("hello"))
    assert run(alice, "smol", "hi", "k").status_code == 200
    assert model_server.last.headers["authorization"] == f"Bearer {secret}"
    model_server.fail(401, f"Incorrect API key provided: {secret}")
    failed = run(alice, "smol", "again", "k")
    assert failed.status_code == 502 and "401" in failed.json()["detail"]
    assert secret not in failed.content.decode() and secret not in Run.objects.get(pk=failed.json()["run_id"]).error


def test_a_private_base_url_is_refused_when_run(alice, model_server, settings) -> None:
    make_agent(alice, model_server)
    settings.AK_AGENTS = {**settings.AK_AGENTS, "ALLOW_PRIVATE_URLS": False}
    answer = run(alice, "smol", "hi", "p")
    assert answer.status_code == 502 and "non-public" in answer.json()["detail"]
    assert model_server.requests == []


def test_it_shares_the_history_and_keeps_its_own_state_apart(alice, model_server) -> None:
    make_agent(alice, model_server, "smol")
    make_agent(alice, model_server, "smol2")
    model_server.reply_with(lambda body: final("smol here"))
    assert run(alice, "echo", "one", "mix").status_code == 200
    assert run(alice, "smol", "two", "mix").json()["result"] == "smol here"
    sent = str(model_server.last.body["messages"])
    assert "echo[turns=1]: one" in sent and "two" in sent
    model_server.reply(tool_calls=[{"name": "final_answer", "arguments": {}}])  # an error step first
    assert run(alice, "smol2", "three", "mix").json()["result"] == "smol here"
    assert run(alice, "smol", "four", "mix").status_code == 200
    session = Session(id="mix", tenant=alice.tenant.slug)
    assert session.get("steps", agent="smol") == 2 and session.get("steps", agent="smol2") == 2
    assert session.get("steps", agent="echo") is None and session.get("steps") is None


def test_without_its_library_an_agent_is_a_400_naming_what_to_install(alice, monkeypatch) -> None:
    """As on a deployment without requirements/smolagents.txt (``None`` in ``sys.modules``: cannot be imported)."""
    monkeypatch.setitem(sys.modules, "smolagents", None)
    config = {"base_url": "https://api.example.com/v1", "model": "m"}
    answer = alice.post("/agents", {"name": "x", "framework": "smolagents", "config": config})
    assert answer.status_code == 400 and "requirements/smolagents.txt" in str(answer.json())
    assert "framework" in answer.json()["fields"]


def test_the_model_options_reach_the_server(alice, model_server) -> None:
    make_agent(alice, model_server, temperature=0.2, max_tokens=50)
    model_server.reply_with(lambda body: final("ok"))
    assert run(alice, "smol", "hi", "opt").status_code == 200
    body = model_server.last.body
    assert (body["model"], body["temperature"], body.get("max_tokens") or body.get("max_completion_tokens")) == (
        "m1",
        0.2,
        50,
    )


def test_runs_at_once_each_get_their_answer(alice, model_server) -> None:
    """Each run works in a thread while the one event loop makes every run's model calls."""
    config = {"base_url": model_server.url, "model": "m1", "tools": ["get_weather"]}
    agent = AgentSpec("smol", "smolagents", config)

    def script(body: dict[str, Any]) -> ModelReply:
        messages = str(body["messages"])
        city = "Oslo" if "Oslo?" in messages else "Rome"
        if "Observation:" in messages:
            return final(f"done {city}")
        return ModelReply(tool_calls=[{"name": "get_weather", "arguments": {"city": city}}], delay=0.2)

    model_server.reply_with(script)

    async def both() -> list[str]:
        sessions = [Session(id=f"c{n}", tenant=alice.tenant.slug) for n in range(2)]
        return await asyncio.gather(runner.run(agent, sessions[0], "Oslo?"), runner.run(agent, sessions[1], "Rome?"))

    assert asyncio.run(both()) == ["done Oslo", "done Rome"]
