"""A PydanticAI tool that needs approval pauses the run (``202``, its ``pause``); ``POST
/runs/<id>/resume`` goes on with PydanticAI's ``DeferredToolResults``: approved, the tool runs once
and the model hears its result; denied, the model hears the denial. Through the real server and a
Celery worker (the paused run queued, resumed on the web tier) and streamed."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.live.queue import Queue
from tests.live.test_real_agents import AGENTS_ENV, make_agent
from tests.live.test_streaming import sse, stream
from tests.modelserver import ModelServer
from tests.modelserver import Reply as ModelReply

pytestmark = pytest.mark.slow


@pytest.fixture
def queue(start_queue) -> Queue:
    return start_queue("redis", workers=1, env=AGENTS_ENV)


def heard(body: dict[str, Any]) -> ModelReply | None:
    last = body["messages"][-1]
    return ModelReply(f"heard: {last['content']}") if last["role"] == "tool" else None


def approval_agent(queue: Queue, server: ModelServer) -> None:
    make_agent(
        queue,
        "careful",
        "pydantic_ai",
        base_url=server.url,
        model="m1",
        tools=["get_weather"],
        approval=["get_weather"],
    )


@pytest.mark.parametrize("approve", [True, False])
def test_a_queued_run_pauses_on_the_worker_and_resumes_on_the_web_tier(
    queue: Queue, model_server: ModelServer, approve: bool
) -> None:
    approval_agent(queue, model_server)
    sid = f"pyd-hitl-{uuid.uuid4().hex[:6]}"
    model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    run_id = queue.enqueue("careful", "Weather in Oslo?", sid)["run_id"]
    paused = queue.wait(run_id, lambda r: r["status"] != "queued" and r["status"] != "running", 60)
    assert paused["status"] == "paused", paused
    (request,) = paused["pause"]["requests"]
    assert (request["tool"], request["arguments"]) == ("get_weather", {"city": "Oslo"})
    assert len(model_server.requests) == 1

    model_server.reply_with(heard)
    decision = {"id": request["id"], "approve": approve, "message": "Not today."}
    resumed = queue.post(f"/runs/{run_id}/resume", {"decisions": [decision]})
    assert resumed.status_code == 200, resumed.text
    expected = "It is sunny in Oslo." if approve else "Not today."
    assert resumed.json()["result"] == f"heard: {expected}"
    entries = queue.messages(sid)
    assert [m.get("kind", m["role"]) for m in entries] == ["user", "tool_call", "tool_result", "assistant"]
    assert entries[2]["data"]["output"] == expected
    assert queue.run(run_id)["usage"] == {"prompt_tokens": 20, "completion_tokens": 10}


def test_a_streamed_run_pauses_and_its_streamed_resume_goes_on(queue: Queue, model_server: ModelServer) -> None:
    approval_agent(queue, model_server)
    sid = f"pyd-hitl-{uuid.uuid4().hex[:6]}"
    model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}])
    body = {"agent": "careful", "message": "Rome?", "session_id": sid, "stream": True}
    events = list(sse(stream(queue, "POST", "/run", json=body)))
    assert [kind for _, kind, _ in events] == ["run", "paused"]
    run_id, (request,) = events[0][2]["run_id"], events[1][2]["requests"]
    model_server.reply_with(heard)
    answer = {"decisions": [{"id": request["id"], "approve": True}], "stream": True}
    rest = list(sse(stream(queue, "POST", f"/runs/{run_id}/resume", json=answer)))
    kinds = [kind for _, kind, _ in rest]
    assert kinds[0] == "run" and kinds[-1] == "done"
    assert "".join(data["text"] for _, kind, data in rest if kind == "delta") == "heard: It is sunny in Rome."
