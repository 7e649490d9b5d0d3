"""Runs of real agents that wait for a person, on the platform as deployed (gunicorn, Celery
workers, the Redis store) with the project's model server as the model: an Agents SDK tool that
needs approval, and LangGraph interrupts. What a paused run needs is in the store only: any web
process or worker goes on with it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests import services
from tests.live.queue import Queue
from tests.live.test_real_agents import AGENTS_ENV, TOOL_CALLS
from tests.live.test_streaming import sse, stream
from tests.modelserver import ModelServer, Reply

pytestmark = pytest.mark.slow

REFUND = {"name": "refund", "needs_approval": True}


@pytest.fixture(scope="module", autouse=True)
def _calls() -> Iterator[None]:
    TOOL_CALLS.touch()
    yield
    TOOL_CALLS.unlink(missing_ok=True)


@pytest.fixture
def queue(start_queue) -> Queue:
    return start_queue("redis", workers=1, env=AGENTS_ENV)


def refunds(order: str) -> int:
    """How many times ``refund`` ran for ``order``, in every process of the platform."""
    return TOOL_CALLS.read_text().splitlines().count(f"refund {order}")


def make_agent(queue: Queue, name: str, framework: str, **config: object) -> None:
    answer = queue.post("/agents", {"name": name, "framework": framework, "config": config})
    assert answer.status_code == 201, answer.text


def paused_on_the_worker(queue: Queue, agent: str, message: str, session_id: str) -> dict:
    run_id = queue.enqueue(agent, message, session_id)["run_id"]
    run = queue.wait(run_id, lambda r: r["status"] in ("paused", "succeeded", "failed"))
    assert run["status"] == "paused", run
    return run


def parent_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))


def after_tool(text: str):
    """The model's answer once the request ends with a tool's result: ``text`` and that result."""

    def answer(body: dict) -> Reply | None:
        last = body["messages"][-1]
        return Reply(f"{text} ({last['content']})") if last["role"] == "tool" else None

    return answer


def kinds(queue: Queue, session_id: str) -> list[str]:
    return [m.get("kind", m["role"]) for m in queue.messages(session_id)]


def test_an_agents_sdk_tool_waits_on_the_worker_and_runs_once_when_approved_on_the_web_tier(
    queue: Queue, model_server: ModelServer
) -> None:
    make_agent(queue, "clerk", "openai_agents", base_url=model_server.url, model="m1", tools=[REFUND])
    session_id, order = f"ok-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8]
    model_server.reply("Let me refund it.", tool_calls=[{"name": "refund", "arguments": {"order": order}}])
    model_server.reply_with(after_tool("Refunded."))

    run = paused_on_the_worker(queue, "clerk", f"Refund {order}", session_id)
    assert run["pause"] == {
        "kind": "approval",
        "requests": [{"id": "call_1", "tool": "refund", "arguments": {"order": order}}],
    }
    assert refunds(order) == 0 and len(model_server.requests) == 1
    assert kinds(queue, session_id) == ["user"]

    answer = queue.post(f"/runs/{run['run_id']}/resume", {"decisions": [{"id": "call_1", "approve": True}]})
    assert answer.status_code == 200, answer.text  # sync: a web process goes on with it
    reply = f"Let me refund it.\n\nRefunded. (Order {order} refunded.)"
    assert answer.json()["result"] == reply
    assert refunds(order) == 1
    assert model_server.last.body["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": f"Order {order} refunded.",
    }
    assert kinds(queue, session_id) == ["user", "tool_call", "tool_result", "assistant"]
    assert queue.messages(session_id)[-1]["content"] == reply
    done = queue.run(run["run_id"])
    assert (done["status"], done["usage"]) == ("succeeded", {"prompt_tokens": 20, "completion_tokens": 10})


def test_a_denial_after_a_worker_restart_is_heard_by_the_model(queue: Queue, model_server: ModelServer) -> None:
    """Paused by a web process; the worker is replaced while the run waits (it held nothing); the
    queued resume runs on the new worker, and the tool does not run."""
    make_agent(queue, "clerk", "openai_agents", base_url=model_server.url, model="m1", tools=[REFUND])
    session_id, order = f"no-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8]
    model_server.reply(tool_calls=[{"name": "refund", "arguments": {"order": order}}])
    model_server.reply_with(after_tool("I did not refund it."))
    answer = queue.post("/run", {"agent": "clerk", "message": f"Refund {order}", "session_id": session_id})
    assert answer.status_code == 202 and answer.json()["status"] == "paused", answer.text
    run_id = answer.json()["run_id"]

    for name in list(queue.workers):
        queue.workers.pop(name).kill()
    new = queue.add_worker()
    decisions = [{"id": "call_1", "approve": False, "message": "It was a gift."}]
    assert queue.post(f"/runs/{run_id}/resume", {"decisions": decisions, "async": True}).status_code == 202
    done = queue.finished(run_id)
    assert done["status"] == "succeeded", done
    denial = "Tool execution was not approved. The person said: It was a gift."
    assert model_server.last.body["messages"][-1]["content"] == denial
    assert done["result"] == f"I did not refund it. ({denial})"
    assert refunds(order) == 0
    assert queue.worker_of(run_id)[run_id].startswith(f"{new}@")


def test_a_streamed_run_and_its_streamed_resume_add_up_to_the_reply(queue: Queue, model_server: ModelServer) -> None:
    make_agent(queue, "clerk", "openai_agents", base_url=model_server.url, model="m1", tools=[REFUND])
    session_id, order = f"st-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8]
    model_server.reply("Checking the order.", tool_calls=[{"name": "refund", "arguments": {"order": order}}])
    model_server.reply("Refunded, all good.")
    body = {"agent": "clerk", "message": f"Refund {order}", "session_id": session_id, "stream": True}
    before = list(sse(stream(queue, "POST", "/run", json=body)))
    assert [kind for _, kind, _ in before if kind != "delta"] == ["run", "paused"]
    assert before[-1][2]["requests"][0]["arguments"] == {"order": order}
    run_id = before[0][2]["run_id"]
    resume = {"decisions": [{"id": "call_1", "approve": True}], "stream": True}
    after = list(sse(stream(queue, "POST", f"/runs/{run_id}/resume", json=resume)))
    assert after[-1][1] == "done"
    deltas = [data["text"] for _, kind, data in before + after if kind == "delta"]
    assert "".join(deltas) == after[-1][2]["result"] == "Checking the order.\n\nRefunded, all good."
    assert refunds(order) == 1


def test_a_langgraph_interrupt_is_resumed_by_another_web_process(queue: Queue, model_server: ModelServer) -> None:
    """The graph pauses in the stack's web tier; a second web tier (its own gunicorn on the same
    database, store and broker, started by this test because gunicorn gives no way to choose which
    of its workers takes a request) resumes it: a process that never saw the run goes on with it
    from the checkpoint in the store."""
    make_agent(
        queue, "approver", "langgraph", graph="approval", mode="checkpoint", base_url=model_server.url, model="m"
    )
    session_id = f"graph-{uuid.uuid4().hex[:6]}"
    body = {"agent": "approver", "message": "delete the old invoices", "session_id": session_id}
    asked = queue.post("/run", body)
    assert asked.status_code == 202, asked.text
    assert asked.json()["pause"] == {"kind": "input", "prompt": "Shall I delete the old invoices?"}
    assert model_server.requests == []  # it stopped at the question, before the model

    port = services.free_port()
    other = services.Server(
        args=[
            str(services.VENV_BIN / "gunicorn"),
            "akplatform.asgi:application",
            f"--bind=127.0.0.1:{port}",
            "-w",
            "1",
        ],
        port=port,
        cwd=services.ROOT,
        env=queue.platform.env,
        log=queue.tmp / f"other-web-{port}.log",
    )
    try:
        other.start(timeout=60)
        services.wait_until_answered(f"{other.url}/health", timeout=60)
        model_server.reply("Done: 12 old invoices deleted.")
        url = f"{other.url}/runs/{asked.json()['run_id']}/resume"
        done = requests.post(url, json={"input": "yes"}, headers=queue.headers, timeout=60)
        worker = queue.worker_of(asked.json()["run_id"])[asked.json()["run_id"]]  # web@host:pid
        assert parent_of(int(worker.rsplit(":", 1)[1])) == other.proc.pid, worker
    finally:
        other.stop()
    assert done.status_code == 200, done.text
    assert done.json()["result"] == "Done: 12 old invoices deleted."
    sent = [(m["role"], m["content"]) for m in model_server.last.body["messages"]]
    assert sent == [("user", "delete the old invoices"), ("user", "approval: yes")]
    assert [(m["role"], m["content"]) for m in queue.messages(session_id)] == [
        ("user", "delete the old invoices"),
        ("assistant", "Done: 12 old invoices deleted."),
    ]


def test_a_langgraph_approval_is_decided_and_its_tool_runs_once_on_the_worker(
    queue: Queue, model_server: ModelServer
) -> None:
    make_agent(
        queue, "reviewer", "langgraph", graph="reviewed", mode="checkpoint", base_url=model_server.url, model="m"
    )
    session_id, order = f"rev-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8]
    model_server.reply(tool_calls=[{"name": "refund", "arguments": {"order": order}}])
    model_server.reply_with(lambda body: Reply("Done.") if body["messages"][-1]["role"] == "tool" else None)
    run = paused_on_the_worker(queue, "reviewer", f"Refund {order}", session_id)
    assert run["pause"]["requests"] == [{"id": "action_1", "tool": "refund", "arguments": {"order": order}}]
    decisions = [{"id": "action_1", "approve": True}]
    assert queue.post(f"/runs/{run['run_id']}/resume", {"decisions": decisions, "async": True}).status_code == 202
    done = queue.finished(run["run_id"])
    assert (done["status"], done["result"]) == ("succeeded", "Done."), done
    assert refunds(order) == 1
    assert kinds(queue, session_id) == ["user", "tool_call", "tool_result", "assistant"]
