"""A ``google_adk`` agent through the deployed platform: gunicorn and a Celery worker, the Redis or
DynamoDB store (the ``queue`` stacks of ``test_real_agents``), the project's model server."""

from __future__ import annotations

import uuid

import pytest

pytest.importorskip("google.adk")

from tests.live.queue import Queue
from tests.live.test_real_agents import make_agent, queue, turn  # noqa: F401 (queue: the shared stacks)
from tests.live.test_streaming import sse, stream
from tests.modelserver import ModelServer, Reply

pytestmark = pytest.mark.slow


def after_tool(text: str):
    return lambda body: Reply(text) if body["messages"][-1]["role"] == "tool" else None


def test_an_adk_agent_calls_a_tool_on_the_worker_then_goes_on_in_a_web_process_streamed(
    queue: Queue,  # noqa: F811
    model_server: ModelServer,
) -> None:
    make_agent(queue, "adk", "google_adk", base_url=model_server.url, model="m-adk", tools=["get_weather"])
    session_id = f"adk-{uuid.uuid4().hex[:6]}"
    model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Lyon"}}])
    model_server.reply_with(after_tool("Sunny in Lyon."))
    first = turn(queue, "adk", "Weather in Lyon?", session_id, run_async=True)  # on the worker
    assert first["status"] == "succeeded", first
    sent = [[m["role"] for m in r.body["messages"]] for r in model_server.requests]
    assert first["result"] == "Sunny in Lyon.", (first.get("attempts"), first.get("error"), sent)
    assert first["usage"] == {"prompt_tokens": 20, "completion_tokens": 10}
    assert "It is sunny in Lyon." in model_server.last.body["messages"][-1]["content"]
    entries = queue.messages(session_id)
    assert [m.get("kind", m["role"]) for m in entries] == ["user", "tool_call", "tool_result", "assistant"]
    assert entries[1]["data"]["name"] == "get_weather" and entries[2]["data"]["output"] == "It is sunny in Lyon."

    model_server.reply_with(None)
    model_server.clear()
    body = {"agent": "adk", "message": "And tomorrow?", "session_id": session_id, "stream": True}
    events = list(sse(stream(queue, "POST", "/run", json=body)))  # a web process goes on
    assert [kind for _, kind, _ in events][-1] == "done", events
    deltas = "".join(data["text"] for _, kind, data in events if kind == "delta")
    assert deltas == events[-1][2]["result"] == "reply to: And tomorrow?"
    (request,) = model_server.requests
    assert request.body["stream"] is True
    # The worker's turn, kept as ADK's events in the agent's state, is what the model sees first.
    roles = [m["role"] for m in request.body["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]


def test_an_adk_agent_whose_server_fails_commits_nothing(queue: Queue, model_server: ModelServer) -> None:  # noqa: F811
    make_agent(queue, "adk", "google_adk", base_url=model_server.url, model="m-adk")
    session_id = f"adk-fail-{uuid.uuid4().hex[:6]}"
    assert turn(queue, "adk", "first", session_id, run_async=False)["status"] == "succeeded"
    model_server.fail(500, "overloaded")
    failed = queue.finished(queue.enqueue("adk", "second", session_id)["run_id"])  # on the worker
    assert failed["status"] == "failed" and "500" in failed["error"], failed
    model_server.fail(503, "still overloaded")
    sync = queue.post("/run", {"agent": "adk", "message": "third", "session_id": session_id})
    assert sync.status_code == 502 and sync.json()["code"] == "agent_failed"
    assert [m["content"] for m in queue.messages(session_id)] == ["first", "reply to: first"]
    model_server.clear()
    assert turn(queue, "adk", "fourth", session_id, run_async=True)["status"] == "succeeded"
    sent = [(m["role"], m["content"]) for m in model_server.last.body["messages"][1:]]
    assert sent == [("user", "first"), ("assistant", "reply to: first"), ("user", "fourth")]
