"""The ``crewai`` framework (CrewAI 1.15) in process, against the project's model server: config,
a tool call, a crew's handoffs, history, usage, failures, state kept apart, human input.

CrewAI lives in its own environment (requirements/crewai.txt): without it these tests are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("crewai", reason="CrewAI runs in its own environment: pip install -r requirements/crewai.txt")

from agents_app.frameworks import Pause, Resume, get_framework
from agents_app.frameworks.crewai_framework import PAUSED, TASK_OUTPUTS
from sessions_app.core import Session, SessionView
from sessions_app.stores.base import HANDOFF, TOOL_CALL, TOOL_RESULT
from tests.modelserver import ModelServer, Reply

TOOLS = {
    "get_weather": "tests.plain_tools.get_weather",
    "add": "tests.plain_tools.add",
    "broken": "tests.plain_tools.broken",
    "whoami": "tests.plain_tools.whoami",
}
PERSONA = {"role": "Weather reporter", "goal": "Tell the weather", "backstory": "You know the weather."}
CREW = {
    "agents": [
        {"role": "Researcher", "goal": "Find facts", "backstory": "You dig.", "tools": ["get_weather"]},
        {"role": "Writer", "goal": "Write replies", "backstory": "You write."},
    ],
    "tasks": [
        {"description": "Find the facts for: {message}", "expected_output": "Facts", "agent": "Researcher"},
        {"description": "Answer {message}\nConversation:\n{history}", "expected_output": "A reply", "agent": "Writer"},
    ],
}


@pytest.fixture(autouse=True)
def tools(settings) -> None:
    settings.AK_AGENTS = {**settings.AK_AGENTS, "TOOLS": TOOLS}


def make_agent(alice, server: ModelServer, name: str = "crew", **config: Any) -> None:
    config = {"base_url": server.url, "model": "m1", **config}
    answer = alice.post("/agents", {"name": name, "framework": "crewai", "config": config})
    assert answer.status_code == 201, answer.json()


def run(alice, agent: str, message: str, session_id: str) -> Any:
    return alice.post("/run", {"agent": agent, "message": message, "session_id": session_id})


def entries(alice, session_id: str) -> list[dict[str, Any]]:
    return alice.get(f"/sessions/{session_id}/messages").json()["messages"]


def after_tool(text: str):
    return lambda body: Reply(text) if body["messages"][-1]["role"] == "tool" else None


# --- config --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"tools": ["launch_missiles"]}, "tools[0]"),
        ({"role": ""}, "role"),
        ({"goal": 3}, "goal"),
        ({"backstory": "You know {secret}"}, "backstory"),
        ({"api_key": "sk-literal"}, "api_key"),
        ({"history": 501}, "history"),
        ({"max_iter": 0}, "max_iter"),
        ({"human_input": "yes"}, "human_input"),
        ({"python": "os.system"}, "python"),
        ({"agents": [], "tasks": []}, "agents"),
    ],
)
def test_a_bad_config_is_a_400_naming_its_key(alice, config, field) -> None:
    config = {"base_url": "https://api.example.com/v1", "model": "m", **PERSONA, **config}
    answer = alice.post("/agents", {"name": "bad", "framework": "crewai", "config": config})
    assert answer.status_code == 400, answer.json()
    assert field in str(answer.json())


@pytest.mark.parametrize(
    ("task", "field", "why"),
    [
        ({"agent": "Nobody"}, "tasks[0].agent", "role of one of the crew's agents"),
        ({"description": "Find facts"}, "tasks", "{message}"),
        ({"description": "Find {facts} for {message}"}, "tasks[0].description", "{facts}"),
        ({"human_input": "yes"}, "tasks[0].human_input", "true or false"),
    ],
)
def test_a_bad_crew_is_a_400_naming_its_field(alice, task, field, why) -> None:
    tasks = [{**CREW["tasks"][0], **task}]
    config = {"base_url": "https://api.example.com/v1", "model": "m", "agents": CREW["agents"], "tasks": tasks}
    answer = alice.post("/agents", {"name": "bad", "framework": "crewai", "config": config})
    assert answer.status_code == 400, answer.json()
    fields = answer.json()["fields"]
    assert f"config.{field}" in fields and why in str(fields[f"config.{field}"]), fields


@pytest.mark.parametrize(("path", "why"), [("tests.plain_tools.nowhere", "nowhere"), ("os.sep", "not a function")])
def test_a_tool_that_does_not_load_is_refused_when_saved(alice, settings, path, why) -> None:
    settings.AK_AGENTS = {**settings.AK_AGENTS, "TOOLS": {**TOOLS, "gone": path}}
    config = {"base_url": "https://api.example.com/v1", "model": "m", **PERSONA, "tools": ["gone"]}
    answer = alice.post("/agents", {"name": "bad", "framework": "crewai", "config": config})
    assert answer.status_code == 400 and "tools" in str(answer.json()) and why in str(answer.json())


def test_a_private_base_url_is_refused_when_saved_and_when_run(alice, model_server, settings) -> None:
    make_agent(alice, model_server, **PERSONA)
    settings.AK_AGENTS = {**settings.AK_AGENTS, "ALLOW_PRIVATE_URLS": False}
    config = {"base_url": model_server.url, "model": "m", **PERSONA}
    refused = alice.post("/agents", {"name": "x", "framework": "crewai", "config": config})
    assert refused.status_code == 400 and "non-public" in str(refused.json())
    answer = run(alice, "crew", "hi", "s")
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed"
    assert model_server.requests == []


# --- conversations -------------------------------------------------------------------------------


def test_an_agent_calls_a_tool_and_its_steps_are_items(alice, model_server) -> None:
    make_agent(alice, model_server, **PERSONA, tools=["get_weather"])
    model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    model_server.reply_with(after_tool("Sunny in Paris, enjoy."))
    answer = run(alice, "crew", "Weather in Paris?", "w")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["result"] == "Sunny in Paris, enjoy."

    first, second = model_server.requests
    assert first.body["model"] == "m1"
    system, user = first.body["messages"]
    assert "Weather reporter" in system["content"] and "You know the weather." in system["content"]
    assert "Weather in Paris?" in user["content"]
    assert [t["function"]["name"] for t in first.body["tools"]] == ["get_weather"]
    assert second.body["messages"][-1]["content"] == "It is sunny in Paris."

    history = entries(alice, "w")
    assert [(m["role"], m.get("kind")) for m in history] == [
        ("user", None),
        ("assistant", "tool_call"),
        ("tool", "tool_result"),
        ("assistant", None),
    ]
    assert history[1]["data"] == {"name": "get_weather", "arguments": '{"city": "Paris"}', "task": 0}
    assert history[2]["data"] == {"name": "get_weather", "output": "It is sunny in Paris.", "task": 0}
    run_record = alice.get(f"/runs/{answer.json()['run_id']}").json()
    assert run_record["usage"] == {"prompt_tokens": 20, "completion_tokens": 10}  # two model calls

    # The next turn sees the conversation as the task's context.
    model_server.reply("Rain tomorrow.")
    assert run(alice, "crew", "And tomorrow?", "w").json()["result"] == "Rain tomorrow."
    task_text = model_server.last.body["messages"][-1]["content"]
    assert "And tomorrow?" in task_text
    assert "user: Weather in Paris?\nassistant: Sunny in Paris, enjoy." in task_text


def test_an_async_tool_and_the_call_context_reach_the_function(alice, model_server) -> None:
    make_agent(alice, model_server, **PERSONA, tools=["add", "whoami"])
    model_server.reply(tool_calls=[{"name": "add", "arguments": {"a": 2, "b": 3}}])
    model_server.reply(tool_calls=[{"name": "whoami", "arguments": {"question": "me?"}}])
    model_server.reply("done")
    answer = run(alice, "crew", "2+3?", "t")
    assert answer.status_code == 200, answer.json()
    results = [m["content"] for m in entries(alice, "t") if m.get("kind") == "tool_result"]
    run_id = answer.json()["run_id"]
    assert results == ["5", f"tenant={alice.tenant.slug} session=t run={run_id} agent=crew"]
    whoami_schema = model_server.requests[0].body["tools"][1]["function"]["parameters"]
    assert list(whoami_schema["properties"]) == ["question"]  # the context is not the model's to give


def test_a_tool_that_raises_tells_the_model_and_the_run_goes_on(alice, model_server) -> None:
    make_agent(alice, model_server, **PERSONA, tools=["broken"])
    model_server.reply(tool_calls=[{"name": "broken", "arguments": {"reason": "on purpose"}}])
    model_server.reply_with(after_tool("The tool failed, sorry."))
    answer = run(alice, "crew", "try it", "b")
    assert answer.status_code == 200 and answer.json()["result"] == "The tool failed, sorry."
    told = model_server.requests[1].body["messages"][-1]
    assert told["role"] == "tool" and "the tool broke: on purpose" in told["content"]
    history = entries(alice, "b")
    assert [m.get("kind", m["role"]) for m in history] == ["user", "tool_call", "tool_result", "assistant"]
    assert history[2]["content"] == "error: RuntimeError"


def test_a_crew_hands_each_task_on_and_replies_with_the_last(alice, model_server) -> None:
    make_agent(alice, model_server, **CREW)
    model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    model_server.reply("Oslo: sunny.")
    model_server.reply("It is sunny in Oslo today.")
    answer = run(alice, "crew", "Oslo?", "c")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["result"] == "It is sunny in Oslo today."
    run_record = alice.get(f"/runs/{answer.json()['run_id']}").json()
    assert run_record["usage"] == {"prompt_tokens": 30, "completion_tokens": 15}  # three model calls
    writer = model_server.requests[-1].body["messages"]
    assert "Write replies" in writer[0]["content"]
    assert "Oslo: sunny." in writer[-1]["content"]  # the researcher's output is its context
    history = entries(alice, "c")
    assert [m.get("kind", m["role"]) for m in history] == ["user", "tool_call", "tool_result", "handoff", "assistant"]
    assert history[3]["data"] == {"from": "Researcher", "to": "Writer", "task": 0, "output": "Oslo: sunny."}
    state = Session(id="c", tenant=alice.tenant.slug).get(TASK_OUTPUTS, agent="crew")
    assert state == [
        {"agent": "Researcher", "output": "Oslo: sunny."},
        {"agent": "Writer", "output": "It is sunny in Oslo today."},
    ]


def test_crewai_sends_nothing_home_and_writes_no_task_output_to_disk(alice, model_server) -> None:
    from crewai.telemetry import Telemetry
    from crewai_core.paths import db_storage_path

    secret = f"the secret plan {uuid.uuid4().hex}"
    make_agent(alice, model_server, **PERSONA)
    model_server.reply(secret)
    assert run(alice, "crew", "hi", "quiet").json()["result"] == secret
    assert Telemetry._is_telemetry_disabled()  # CrewAI's documented opt-outs are set
    assert os.environ["CREWAI_TRACING_ENABLED"] == "false"
    log = Path(db_storage_path()) / "latest_kickoff_task_outputs.db"  # CrewAI's replay log, per process's cwd
    with contextlib.closing(sqlite3.connect(log)) as db:  # the task outputs stayed in memory
        rows = db.execute("SELECT output FROM latest_kickoff_task_outputs").fetchall()
    assert not [row for row in rows if secret in str(row)]


def test_a_runs_events_carry_the_reply_and_the_python_api_runs_it(alice, model_server) -> None:
    from agents_app.frameworks import AgentSpec
    from agents_app.runner import runner
    from tests.agents_app.test_streaming import events_of

    make_agent(alice, model_server, **PERSONA)
    model_server.reply("A streamed reply.")
    answer = run(alice, "crew", "hi", "st")
    events = events_of(alice.get(f"/runs/{answer.json()['run_id']}/events"))
    deltas = "".join(data["text"] for _, kind, data in events if kind == "delta")
    assert deltas == "A streamed reply." and events[-1][1] == "done"

    agent = AgentSpec("py", "crewai", {"base_url": model_server.url, "model": "m1", **PERSONA, "tools": ["add"]})
    session = Session(id="py", tenant=alice.tenant.slug)
    model_server.reply(tool_calls=[{"name": "add", "arguments": {"a": 1, "b": 2}}])
    model_server.reply_with(after_tool("It is 3."))
    assert asyncio.run(runner.run(agent, session, "1+2?")) == "It is 3."
    assert [m.kind for m in session.history()] == ["message", TOOL_CALL, TOOL_RESULT, "message"]


def test_braces_in_a_message_are_text(alice, model_server) -> None:
    make_agent(alice, model_server, **PERSONA)
    model_server.reply("ok")
    assert run(alice, "crew", "print {name} and {history}", "b").status_code == 200
    assert "print {name} and {history}" in model_server.last.body["messages"][-1]["content"]


def test_each_agent_keeps_its_own_state_on_a_shared_session(alice, model_server) -> None:
    make_agent(alice, model_server, "one", **PERSONA)
    make_agent(alice, model_server, "two", **{**PERSONA, "role": "Second"})
    model_server.reply("from one")
    model_server.reply("from two")
    assert run(alice, "one", "hi", "shared").status_code == 200
    assert run(alice, "two", "hi again", "shared").status_code == 200
    session = Session(id="shared", tenant=alice.tenant.slug)
    assert session.get(TASK_OUTPUTS, agent="one") == [{"agent": "Weather reporter", "output": "from one"}]
    assert session.get(TASK_OUTPUTS, agent="two") == [{"agent": "Second", "output": "from two"}]
    assert session.get(TASK_OUTPUTS) is None  # nothing in the shared scope


# --- failures ------------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["status", "no_answer"])
def test_a_failing_model_fails_the_run_and_commits_nothing(alice, model_server, failure) -> None:
    make_agent(alice, model_server, **PERSONA, tools=["get_weather"])
    model_server.reply("first")
    assert run(alice, "crew", "hello", "f").status_code == 200
    before = entries(alice, "f")
    if failure == "status":
        model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}])
        model_server.fail(500, "the model broke")
    else:
        model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}])
        model_server.fail(400, "bad request")
    answer = run(alice, "crew", "Weather in Rome?", "f")
    assert answer.status_code == 502, answer.json()
    assert answer.json()["code"] == "agent_failed"
    assert entries(alice, "f") == before  # not the message, not the tool call that did run
    state = Session(id="f", tenant=alice.tenant.slug).get(TASK_OUTPUTS, agent="crew")
    assert state == [{"agent": "Weather reporter", "output": "first"}]


def test_a_failure_never_shows_the_api_key(alice, model_server) -> None:
    assert alice.post("/secrets", {"name": "llm", "value": "sk-crew-0123456789"}).status_code == 201
    make_agent(alice, model_server, **PERSONA, api_key={"secret": "llm"})
    model_server.fail(401, "bad key sk-crew-0123456789")
    answer = run(alice, "crew", "hi", "k")
    assert answer.status_code == 502 and "sk-crew-0123456789" not in str(answer.json())
    assert model_server.last.headers["authorization"] == "Bearer sk-crew-0123456789"


# --- human input (the adapter's Pause and resume) ------------------------------------------------


def adapter_run(alice, config: dict[str, Any], message: str, *, paused: Pause | None = None, answer: Any = None):
    """Run (or resume) the adapter on a view of session ``h``, as the runner would; the outcome and
    the view (its state and items, which the runner commits)."""
    from agents_app.frameworks import AgentSpec

    agent = AgentSpec("crew", "crewai", config)
    session = Session(id="h", tenant=alice.tenant.slug)
    view = SessionView(session.store.load(session.key, scopes=("crew",)), "crew", key=session.key, run_id=None)
    framework = get_framework("crewai")
    if paused is None:
        outcome = asyncio.run(framework.run(agent, view, message))
    else:
        outcome = asyncio.run(framework.resume(agent, view, paused, Resume(input=answer)))
    session.store.commit(session.key, expected_version=None, state=view.changes())
    return outcome, view


def test_human_input_pauses_and_feedback_makes_the_agent_answer_again(alice, model_server) -> None:
    config = {"base_url": model_server.url, "model": "m1", **CREW}
    config["tasks"] = [{**CREW["tasks"][0], "human_input": True}, CREW["tasks"][1]]
    model_server.reply("Draft facts.")
    paused, view = adapter_run(alice, config, "Oslo?")
    assert isinstance(paused, Pause) and paused.kind == "input"
    assert paused.as_dict() == {"kind": "input", "prompt": {"task": 0, "agent": "Researcher", "output": "Draft facts."}}
    assert view.get(PAUSED)["task"] == 0 and len(model_server.requests) == 1

    model_server.reply("Better facts.")
    again, _ = adapter_run(alice, config, "", paused=paused, answer="Add the temperature.")
    assert isinstance(again, Pause) and again.prompt["output"] == "Better facts."
    sent = model_server.last.body["messages"]
    assert sent[:2] == model_server.requests[0].body["messages"][:2]  # the agent's conversation, restored
    assert sent[-2]["content"] == "Draft facts." and "Add the temperature." in sent[-1]["content"]

    model_server.reply("Sunny, 20 degrees.")
    reply, view = adapter_run(alice, config, "", paused=again, answer="")
    assert reply.text == "Sunny, 20 degrees."
    assert "Better facts." in model_server.last.body["messages"][-1]["content"]  # accepted, handed on
    assert len(model_server.requests) == 3
    assert view.get(PAUSED) is None
    assert [item.kind for item in view.items] == [HANDOFF]
    assert view.get(TASK_OUTPUTS)[0] == {"agent": "Researcher", "output": "Better facts."}


def test_blank_input_accepts_the_last_tasks_answer_without_a_model_call(alice, model_server) -> None:
    config = {"base_url": model_server.url, "model": "m1", **PERSONA, "human_input": True, "tools": ["get_weather"]}
    model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Lima"}}])
    model_server.reply_with(after_tool("Sunny in Lima."))
    paused, _ = adapter_run(alice, config, "Lima?")
    assert isinstance(paused, Pause) and paused.prompt["output"] == "Sunny in Lima."
    reply, view = adapter_run(alice, config, "", paused=paused, answer="  ")
    assert reply.text == "Sunny in Lima." and len(model_server.requests) == 2
    assert [item.kind for item in view.items] == [TOOL_CALL, TOOL_RESULT]  # the steps before the pause
