"""PydanticAI and smolagents agents through the deployed platform (gunicorn, a Celery worker, the
Redis store) against the project's model server: a tool call on the web tier, the next turn on a
worker with the first one's history, a stream, and a failure that commits nothing. The stack is
``test_real_agents``'s (the same environment, so one stack serves both modules)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.live.queue import Queue
from tests.live.test_real_agents import AGENTS_ENV, make_agent, turn
from tests.live.test_streaming import sse, stream
from tests.modelserver import ModelServer
from tests.modelserver import Reply as ModelReply

pytestmark = pytest.mark.slow


@pytest.fixture
def queue(start_queue) -> Queue:
    return start_queue("redis", workers=1, env=AGENTS_ENV)


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content or [])


def answer(framework: str, text: str) -> ModelReply:
    """The model's last answer of a run: text, or for smolagents a call of its final_answer tool."""
    if framework == "smolagents":
        return ModelReply(tool_calls=[{"name": "final_answer", "arguments": {"answer": text}}])
    return ModelReply(text)


def after_the_tool(framework: str, text: str):
    """``text`` once the request ends with the tool's result (smolagents: an observation)."""

    def reply(body: dict[str, Any]) -> ModelReply | None:
        last = body["messages"][-1]
        done = last["role"] == "tool" or _text(last).startswith("Observation:")
        return answer(framework, text) if done else None

    return reply


@pytest.mark.parametrize("framework", ["pydantic_ai", "smolagents"])
def test_a_tool_call_on_the_web_tier_then_a_turn_on_a_worker(
    queue: Queue, model_server: ModelServer, framework: str
) -> None:
    make_agent(queue, "agent", framework, base_url=model_server.url, model="m1", tools=["get_weather"])
    session_id = f"{framework}-{uuid.uuid4().hex[:6]}"
    model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    model_server.reply_with(after_the_tool(framework, "Sunny in Paris."))
    first = turn(queue, "agent", "Weather in Paris?", session_id, run_async=False)  # a web process
    assert first["status"] == "succeeded", first
    assert first["result"] == "Sunny in Paris."
    assert first["usage"] == {"prompt_tokens": 20, "completion_tokens": 10}
    assert "It is sunny in Paris." in str(model_server.requests[1].body["messages"])
    entries = queue.messages(session_id)
    assert [m.get("kind", m["role"]) for m in entries] == ["user", "tool_call", "tool_result", "assistant"]
    assert entries[1]["data"]["name"] == "get_weather" and entries[2]["data"]["output"] == "It is sunny in Paris."

    model_server.clear()
    model_server.reply_with(lambda body: answer(framework, "Rain tomorrow."))
    second = turn(queue, "agent", "And tomorrow?", session_id, run_async=True)  # the worker
    assert second["status"] == "succeeded", second
    assert second["result"] == "Rain tomorrow."
    sent = str(model_server.requests[0].body["messages"])
    assert "Weather in Paris?" in sent and "Sunny in Paris." in sent and "And tomorrow?" in sent

    model_server.fail(500, "overloaded")
    failed = turn(queue, "agent", "third", session_id, run_async=True)
    assert failed["status"] == "failed" and "500" in failed["error"], failed
    assert len(queue.messages(session_id)) == 6  # nothing of the failed run


def test_a_pydantic_ai_run_streams_its_reply(queue: Queue, model_server: ModelServer) -> None:
    make_agent(queue, "streamer", "pydantic_ai", base_url=model_server.url, model="m1")
    model_server.reply("a reply in several pieces", rate=50)
    body = {"agent": "streamer", "message": "hi", "session_id": f"s-{uuid.uuid4().hex[:6]}", "stream": True}
    events = list(sse(stream(queue, "POST", "/run", json=body)))
    deltas = [data["text"] for _, kind, data in events if kind == "delta"]
    assert len(deltas) > 1 and "".join(deltas) == "a reply in several pieces"
    assert events[-1][1] == "done", [kind for _, kind, _ in events]
