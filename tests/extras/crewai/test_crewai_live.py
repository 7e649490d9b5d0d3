"""A CrewAI crew through the deployed platform (gunicorn, a Celery worker, the Redis store) with the
project's model server as its model: run from CrewAI's own environment (requirements/crewai.txt),
whose Python the live stack's processes run on too."""

from __future__ import annotations

import uuid

import pytest

from tests.live.queue import Queue
from tests.live.test_streaming import sse, stream
from tests.modelserver import ModelServer, Reply

pytest.importorskip("crewai", reason="CrewAI runs in its own environment: pip install -r requirements/crewai.txt")

pytestmark = pytest.mark.slow

TOOLS = "get_weather=tests.plain_tools.get_weather"
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


def after_tool(text: str):
    return lambda body: Reply(text) if body["messages"][-1]["role"] == "tool" else None


def test_a_crew_calls_a_tool_on_the_worker_and_on_the_web_and_a_failure_commits_nothing(
    start_queue, model_server: ModelServer
) -> None:
    queue: Queue = start_queue("redis", workers=1, env={"AK_AGENTS__TOOLS": TOOLS})
    config = {"base_url": model_server.url, "model": "m1", **CREW}
    answer = queue.post("/agents", {"name": "crew", "framework": "crewai", "config": config})
    assert answer.status_code == 201, answer.text
    session_id = f"crew-{uuid.uuid4().hex[:6]}"

    model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    model_server.reply_with(after_tool("Paris: sunny."))
    first = queue.finished(queue.enqueue("crew", "Paris?", session_id)["run_id"], timeout=120)  # the worker
    model_server.reply_with(None)
    assert first["status"] == "succeeded", first
    assert first["result"] == "reply to: " + model_server.last.body["messages"][-1]["content"]
    assert first["usage"] == {"prompt_tokens": 30, "completion_tokens": 15}  # three model calls
    tool_answer = model_server.requests[1].body["messages"][-1]
    assert tool_answer["role"] == "tool" and tool_answer["content"] == "It is sunny in Paris."
    kinds = [m.get("kind", m["role"]) for m in queue.messages(session_id)]
    assert kinds == ["user", "tool_call", "tool_result", "handoff", "assistant"]

    model_server.clear()
    model_server.reply("Facts again.")
    model_server.reply("Still sunny.")
    second = queue.post("/run", {"agent": "crew", "message": "Tomorrow?", "session_id": session_id})  # the web
    assert second.status_code == 200, second.text
    assert second.json()["result"] == "Still sunny."
    assert f"user: Paris?\nassistant: {first['result']}" in model_server.last.body["messages"][-1]["content"]

    model_server.reply("Facts.")
    model_server.reply("A streamed answer.")
    body = {"agent": "crew", "message": "Streamed?", "session_id": session_id, "stream": True}
    events = list(sse(stream(queue, "POST", "/run", json=body)))  # a web process, streamed
    assert [kind for _, kind, _ in events][-1] == "done", events
    assert "".join(data["text"] for _, kind, data in events if kind == "delta") == "A streamed answer."

    before = queue.messages(session_id)
    model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}])
    model_server.fail(500, "overloaded")
    failed = queue.finished(queue.enqueue("crew", "Rome?", session_id)["run_id"], timeout=120)
    assert failed["status"] == "failed" and "500" in failed["error"], failed
    model_server.fail(500, "overloaded")
    web_failed = queue.post("/run", {"agent": "crew", "message": "Rome?", "session_id": session_id})
    assert web_failed.status_code == 502 and web_failed.json()["code"] == "agent_failed", web_failed.text
    assert queue.messages(session_id) == before  # not the messages, not the tool call that did run
