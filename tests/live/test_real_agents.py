"""Real agents through the deployed platform: gunicorn, a Celery worker, the Redis or DynamoDB
store, and the project's model server (a real OpenAI-compatible HTTP server) as the model."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import requests

from tests import services
from tests.live.queue import NO_RECOVERY, Queue
from tests.live.test_streaming import sse, stream
from tests.modelserver import ModelServer

pytestmark = pytest.mark.slow

SECRET = "sk-live-do-not-leak-0123456789"
TABLE = f"live-{uuid.uuid4().hex[:8]}"  # one for the module: its tests share a platform, each with its tenant
#: Each call of the tools and graphs' ``refund``, one line, from whatever process ran it.
TOOL_CALLS = Path(tempfile.gettempdir()) / f"ak-refunds-{uuid.uuid4().hex[:8]}.log"
#: The tools and graphs of every module of real agents (this one, ADK's, PydanticAI's and
#: smolagents', the framework pauses'): one environment, so one stack serves them all. None of them
#: tests recovery, and each counts its model's requests: a run's heartbeat or its session's lease
#: must not lapse on a busy machine (a framework's first run imports its library), or the sweeper
#: would run it again (recovery has its tests: ``test_async_runs``, ``test_many_runs``).
AGENTS_ENV = {
    "AK_AGENTS__TOOLS": "get_weather=tests.agent_tools.get_weather,refund=tests.agent_tools.refund",
    "AK_AGENTS__GRAPHS": "approval=tests.agent_graphs.approval,reviewed=tests.agent_graphs.reviewed",
    "AK_TEST_TOOL_CALLS": str(TOOL_CALLS),
    **NO_RECOVERY,
}


@pytest.fixture(params=["redis", "dynamodb"])
def queue(request, start_queue) -> Queue:
    env = dict(AGENTS_ENV)
    if request.param == "dynamodb":
        env |= {
            "AK_SESSION__TYPE": "dynamodb",
            "AK_SESSION__DYNAMODB__ENDPOINT_URL": request.getfixturevalue("dynamodb_url"),
            "AK_SESSION__DYNAMODB__TABLE_NAME": TABLE,
        }
    return start_queue("redis", workers=1, env=env)


def make_agent(queue: Queue, name: str, framework: str, **config: object) -> None:
    answer = queue.post("/agents", {"name": name, "framework": framework, "config": config})
    assert answer.status_code == 201, answer.text


def turn(queue: Queue, agent: str, message: str, session_id: str, *, run_async: bool) -> dict:
    """One turn, sync or through the worker; the ended run."""
    if not run_async:
        answer = queue.post("/run", {"agent": agent, "message": message, "session_id": session_id})
        assert answer.status_code == 200, answer.text
        return queue.run(answer.json()["run_id"])
    return queue.finished(queue.enqueue(agent, message, session_id)["run_id"])


def test_an_openai_chat_agent_holds_a_five_turn_conversation(queue: Queue, model_server: ModelServer) -> None:
    make_agent(queue, "gpt", "openai_chat", base_url=model_server.url, model="m1", system_prompt="Be brief.")
    session_id = f"five-{uuid.uuid4().hex[:6]}"
    exchanged: list[dict[str, str]] = []
    for number in range(1, 6):
        message = f"question {number}"
        run = turn(queue, "gpt", message, session_id, run_async=number % 2 == 0)  # web and worker in turn
        assert run["status"] == "succeeded", run
        assert run["result"] == f"reply to: {message}"
        assert run["usage"] == {"prompt_tokens": 10, "completion_tokens": 5}
        assert model_server.last.body["messages"] == [
            {"role": "system", "content": "Be brief."},
            *exchanged,
            {"role": "user", "content": message},
        ]
        exchanged += [{"role": "user", "content": message}, {"role": "assistant", "content": run["result"]}]
    assert [(m["role"], m["content"]) for m in queue.messages(session_id)] == [
        (m["role"], m["content"]) for m in exchanged
    ]


def test_an_openai_agents_agent_calls_a_tool_hands_off_and_the_next_turn_starts_there(
    queue: Queue, model_server: ModelServer
) -> None:
    make_agent(queue, "billing", "openai_agents", base_url=model_server.url, model="m-billing", instructions="Billing.")
    make_agent(
        queue,
        "triage",
        "openai_agents",
        base_url=model_server.url,
        model="m-triage",
        instructions="Triage.",
        tools=["get_weather"],
        handoffs=["billing"],
    )
    session_id = f"team-{uuid.uuid4().hex[:6]}"
    model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    model_server.reply(tool_calls=[{"name": "transfer_to_billing", "arguments": {}}])
    model_server.reply("Billing: it is sunny in Paris, and you owe nothing.")
    first = turn(queue, "triage", "Weather, then my bill?", session_id, run_async=True)  # on the worker
    assert first["status"] == "succeeded", first
    assert first["result"] == "Billing: it is sunny in Paris, and you owe nothing."
    sent = [(r.body["model"], r.body["messages"][-1]["role"]) for r in model_server.requests]
    assert sent == [("m-triage", "user"), ("m-triage", "tool"), ("m-billing", "tool")], (sent, first["attempts"])
    tool_answer = model_server.requests[1].body["messages"][-1]
    assert tool_answer["role"] == "tool" and tool_answer["content"] == "It is sunny in Paris."
    assert model_server.requests[2].body["model"] == "m-billing"
    entries = queue.messages(session_id)
    assert [m.get("kind", m["role"]) for m in entries] == ["user", "tool_call", "tool_result", "handoff", "assistant"]
    assert entries[1]["data"]["name"] == "get_weather" and entries[3]["data"]["to"] == "billing"

    model_server.clear()
    model_server.reply("Still billing here.")
    second = turn(queue, "triage", "Are you sure?", session_id, run_async=False)  # in a web process
    assert second["result"] == "Still billing here."
    (request,) = model_server.requests
    assert request.body["model"] == "m-billing"  # the turn started where the last one ended
    assert request.body["messages"][0] == {"role": "system", "content": "Billing."}


def test_a_langgraph_graph_pauses_at_its_interrupt_and_is_resumed(queue: Queue, model_server: ModelServer) -> None:
    make_agent(
        queue, "approver", "langgraph", graph="approval", mode="checkpoint", base_url=model_server.url, model="m"
    )
    session_id = f"graph-{uuid.uuid4().hex[:6]}"
    run_id = queue.enqueue("approver", "delete the old invoices", session_id)["run_id"]  # the worker
    asked = queue.wait(run_id, lambda r: r["status"] in ("paused", "succeeded", "failed"))
    assert asked["status"] == "paused", asked
    assert asked["pause"] == {"kind": "input", "prompt": "Shall I delete the old invoices?"}
    assert model_server.requests == []  # it stopped at the question, before the model

    model_server.reply("Done: 12 old invoices deleted.")
    done = queue.post(f"/runs/{run_id}/resume", {"input": "yes"})  # a web process resumes it
    assert done.status_code == 200, done.text
    assert done.json()["result"] == "Done: 12 old invoices deleted."
    sent = [(m["role"], m["content"]) for m in model_server.last.body["messages"]]
    assert sent == [("user", "delete the old invoices"), ("user", "approval: yes")]
    assert [(m["role"], m["content"]) for m in queue.messages(session_id)] == [
        ("user", "delete the old invoices"),
        ("assistant", "Done: 12 old invoices deleted."),
    ]


def test_a_server_error_mid_stream_commits_nothing(start_queue, model_server: ModelServer) -> None:
    queue = start_queue("redis", workers=1)
    make_agent(queue, "gpt", "openai_chat", base_url=model_server.url, model="m1")
    session_id = f"cut-{uuid.uuid4().hex[:6]}"
    assert turn(queue, "gpt", "first", session_id, run_async=False)["status"] == "succeeded"
    model_server.reply("a long answer that will never arrive whole")
    model_server.fail_mid_stream(after_chunks=3)
    body = {"agent": "gpt", "message": "second", "session_id": session_id, "stream": True}
    events = list(sse(stream(queue, "POST", "/run", json=body)))
    kinds = [kind for _, kind, _ in events]
    assert kinds[0] == "run" and "delta" in kinds and kinds[-1] == "error"  # pieces came, then the cut
    assert events[-1][2]["code"] == "agent_failed"
    run = queue.run(events[0][2]["run_id"])
    assert run["status"] == "failed" and run["error"].startswith("ModelError")
    model_server.fail(500, "overloaded")
    failed = queue.finished(queue.enqueue("gpt", "third", session_id)["run_id"])  # the worker's run, too
    assert failed["status"] == "failed" and "500" in failed["error"]
    assert [m["content"] for m in queue.messages(session_id)] == ["first", "reply to: first"]


def admin_session(queue: Queue) -> requests.Session:
    """A logged-in admin session on the live console (a superuser made for the test)."""
    env = {**queue.platform.env, "DJANGO_SUPERUSER_PASSWORD": "live-admin-pass-1"}
    username = f"root-{uuid.uuid4().hex[:6]}"  # a platform lent to other tests may have its root already
    subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", username, "--email", "r@x.io"],
        env=env,
        cwd=services.ROOT,
        check=True,
        capture_output=True,
    )
    browser = requests.Session()
    login = f"{queue.platform.url}/admin/login/"
    page = browser.get(login, timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = browser.post(
        login,
        data={"username": username, "password": "live-admin-pass-1", "csrfmiddlewaretoken": token, "next": "/admin/"},
        headers={"Referer": login},
        timeout=30,
    )
    assert answer.status_code == 200 and "Log out" in answer.text
    return browser


def test_the_api_key_reaches_the_server_and_nothing_else(start_queue, model_server: ModelServer) -> None:
    queue = start_queue("redis", workers=1)
    assert queue.post("/secrets", {"name": "provider", "value": SECRET}).status_code == 201
    make_agent(queue, "gpt", "openai_chat", base_url=model_server.url, model="m1", api_key={"secret": "provider"})
    session_id = f"key-{uuid.uuid4().hex[:6]}"
    ok = turn(queue, "gpt", "hello", session_id, run_async=False)
    queued = turn(queue, "gpt", "again", session_id, run_async=True)
    model_server.fail(401, f"Incorrect API key provided: {SECRET}")  # a server that quotes the key
    failed = turn(queue, "gpt", "third", session_id, run_async=True)
    assert (ok["status"], queued["status"], failed["status"]) == ("succeeded", "succeeded", "failed")
    assert [r.headers["authorization"] for r in model_server.requests] == [f"Bearer {SECRET}"] * 3

    shown = [
        queue.get("/agents").text,
        queue.get("/secrets").text,
        queue.get(f"/sessions/{session_id}/messages").text,
        queue.get(f"/sessions/{session_id}/runs").text,
        *(queue.get(f"/runs/{run['run_id']}").text for run in (ok, queued, failed)),
        *(queue.get(f"/runs/{run['run_id']}/events").text for run in (ok, queued, failed)),
    ]
    console = admin_session(queue)
    for path in ("agents_app/secret/", "agents_app/agent/", "agents_app/run/", "sessions_app/thread/"):
        listing = console.get(f"{queue.platform.url}/admin/{path}", timeout=30)
        assert listing.status_code == 200
        shown.append(listing.text)
        for link in sorted(set(re.findall(rf'href="(/admin/{path}[^"?]+/change/)"', listing.text))):
            shown.append(console.get(f"{queue.platform.url}{link}", timeout=30).text)
    assert len(shown) > 12
    assert not [page[:200] for page in shown if SECRET in page]
    logs = sorted(queue.tmp.glob("*.log"))
    assert logs and not [log.name for log in logs if SECRET in log.read_text(errors="replace")]
