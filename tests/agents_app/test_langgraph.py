"""The ``langgraph`` framework in process: the deployment's graphs (``tests/agent_graphs.py``) on the
project's model server (a real HTTP server). Nothing is mocked."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from agents_app.frameworks import AgentSpec, get_framework
from agents_app.frameworks.langgraph import graph_for
from agents_app.frameworks.langgraph_checkpoint import CheckpointNotJSON, CheckpointUnreadable, decode, encode
from agents_app.frameworks.langgraph_run import MAX_CHECKPOINT_BYTES
from agents_app.models import Run
from agents_app.runner import runner
from sessions_app.core import Session
from tests import agent_graphs
from tests.agents_app.test_streaming import events_of
from tests.modelserver import ModelServer, Reply

GRAPHS = {
    "chat": "tests.agent_graphs.chat",
    "weather": "tests.agent_graphs.weather",
    "approval": "tests.agent_graphs.approval",
    "blocking": "tests.agent_graphs.blocking_chat",
    "dated": "tests.agent_graphs.dated",
}
SECRET = "sk-graph-0123456789abcdef"


@pytest.fixture(autouse=True)
def _graphs(settings) -> None:
    settings.AK_AGENTS = {**settings.AK_AGENTS, "GRAPHS": GRAPHS}


def graph_agent(alice, server: ModelServer, name: str = "g", **config: object) -> None:
    config = {"graph": "chat", "base_url": server.url, "model": "m1", **config}
    answer = alice.post("/agents", {"name": name, "framework": "langgraph", "config": config})
    assert answer.status_code == 201, answer.json()


def run(alice, agent: str, message: str, session_id: str):
    return alice.post("/run", {"agent": agent, "message": message, "session_id": session_id})


def history_of(alice, session_id: str) -> list[dict]:
    return alice.get(f"/sessions/{session_id}/messages").json()["messages"]


def texts_of(alice, session_id: str) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in history_of(alice, session_id)]


def checkpoint_of(alice, session_id: str, agent: str = "g"):
    return Session(session_id, tenant=alice.tenant.slug).get("checkpoint", agent=agent)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"graph": "nope"}, "graph"),
        ({}, "graph"),
        ({"graph": "chat", "mode": "pickle"}, "mode"),
        ({"graph": "chat", "base_url": "https://api.example.com/v1", "model": "m", "api_key": "sk-literal"}, "api_key"),
        ({"graph": "chat", "model": "m"}, "base_url"),
        ({"graph": "chat", "history": 501}, "history"),
        ({"graph": "chat", "options": ["a"]}, "options"),
        ({"graph": "chat", "factory": "os.system"}, "factory"),
    ],
)
def test_a_bad_config_is_a_400_naming_its_key(alice, config, field) -> None:
    answer = alice.post("/agents", {"name": "bad", "framework": "langgraph", "config": config})
    assert answer.status_code == 400
    assert field in str(answer.json())


def test_a_graph_whose_factory_does_not_import_is_refused(alice, settings) -> None:
    settings.AK_AGENTS = {**settings.AK_AGENTS, "GRAPHS": {**GRAPHS, "gone": "tests.no_such_module.factory"}}
    answer = alice.post("/agents", {"name": "bad", "framework": "langgraph", "config": {"graph": "gone"}})
    assert answer.status_code == 400 and "graph" in str(answer.json())
    assert "no_such_module" not in str(answer.json())  # the deployment's code paths are its own


def test_a_conversation_in_messages_mode_sends_the_history_each_turn(alice, model_server) -> None:
    graph_agent(alice, model_server, options={"system": "Be brief."}, history=4, temperature=0.5, max_tokens=64)
    for turn in range(1, 4):
        answer = run(alice, "g", f"q{turn}", "conv")
        assert answer.status_code == 200, answer.json()
        assert answer.json()["result"] == f"reply to: q{turn}"
        sent = model_server.last.body
        # ChatOpenAI sends max_tokens by its current name in OpenAI's API.
        assert (sent["model"], sent["temperature"], sent["max_completion_tokens"]) == ("m1", 0.5, 64)
        earlier = []
        for past in range(1, turn):
            earlier += [{"role": "user", "content": f"q{past}"}, {"role": "assistant", "content": f"reply to: q{past}"}]
        assert sent["messages"] == [
            {"role": "system", "content": "Be brief."},
            *earlier[-4:],
            {"role": "user", "content": f"q{turn}"},
        ]
    assert "authorization" not in model_server.last.headers  # no api_key: no header, none from the environment
    assert len(texts_of(alice, "conv")) == 6
    usage = alice.get(f"/runs/{answer.json()['run_id']}").json()["usage"]
    assert usage == {"prompt_tokens": 10, "completion_tokens": 5}


def test_the_reply_streams_as_the_model_produces_it(alice, model_server) -> None:
    graph_agent(alice, model_server)
    model_server.reply("the quick brown fox", usage=(12, 4))
    run_id = run(alice, "g", "go", "st").json()["run_id"]
    events = events_of(alice.get(f"/runs/{run_id}/events"))
    deltas = [data["text"] for _, kind, data in events if kind == "delta"]
    assert len(deltas) > 1 and "".join(deltas) == "the quick brown fox"
    assert events[-1][1] == "done" and events[-1][2]["result"] == "the quick brown fox"
    assert model_server.last.body["stream"] is True
    assert alice.get(f"/runs/{run_id}").json()["usage"] == {"prompt_tokens": 12, "completion_tokens": 4}


def test_a_tool_call_through_the_graph_becomes_items(alice, model_server) -> None:
    graph_agent(alice, model_server, graph="weather")
    call = {"name": "get_weather", "arguments": {"city": "Paris"}}
    model_server.reply("Let me look.", tool_calls=[call], usage=(7, 3))
    model_server.reply_with(lambda body: "It is sunny in Paris." if body["messages"][-1]["role"] == "tool" else None)
    answer = run(alice, "g", "Weather in Paris?", "w")
    assert answer.status_code == 200, answer.json()
    # The first call spoke before it called the tool: what streamed stays in the reply, before the answer.
    assert answer.json()["result"] == "Let me look.\n\nIt is sunny in Paris."
    events = events_of(alice.get(f"/runs/{answer.json()['run_id']}/events"))
    assert "".join(data["text"] for _, kind, data in events if kind == "delta") == answer.json()["result"]

    messages = history_of(alice, "w")
    assert [(m["role"], m.get("kind")) for m in messages] == [
        ("user", None),
        ("assistant", "tool_call"),
        ("tool", "tool_result"),
        ("assistant", None),
    ]
    call, result = messages[1], messages[2]
    assert call["data"]["name"] == "get_weather" and call["data"]["arguments"] == {"city": "Paris"}
    assert call["data"]["call_id"] and call["content"] == 'get_weather({"city": "Paris"})'
    call_id, output = call["data"]["call_id"], "sunny and 18 °C in Paris"
    assert result["data"] == {"call_id": call_id, "name": "get_weather", "output": output}
    assert model_server.last.body["messages"][-1] == {"role": "tool", "content": output, "tool_call_id": call_id}
    usage = alice.get(f"/runs/{answer.json()['run_id']}").json()["usage"]
    assert usage == {"prompt_tokens": 17, "completion_tokens": 8}  # both model calls


def test_an_interrupt_in_messages_mode_fails_the_run(alice, model_server) -> None:
    graph_agent(alice, model_server, graph="approval")
    answer = run(alice, "g", "book a flight", "i")
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed"
    assert "checkpoint" in answer.json()["detail"]
    assert history_of(alice, "i") == []


def test_a_checkpoint_over_the_limit_fails_the_run_and_commits_nothing(alice, model_server) -> None:
    graph_agent(alice, model_server, mode="checkpoint")
    assert run(alice, "g", "small", "big").status_code == 200
    before = checkpoint_of(alice, "big")
    model_server.reply("x" * (MAX_CHECKPOINT_BYTES + 1))
    answer = run(alice, "g", "large", "big")
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed"
    assert "MAX_CHECKPOINT_BYTES" in answer.json()["detail"]
    assert texts_of(alice, "big") == [("user", "small"), ("assistant", "reply to: small")]
    assert checkpoint_of(alice, "big") == before


def test_a_state_that_is_not_json_fails_the_run_naming_the_value(alice, model_server) -> None:
    graph_agent(alice, model_server, graph="dated", mode="checkpoint")
    answer = run(alice, "g", "note it", "d")
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed"
    assert "channel_values.at is a datetime.datetime, which is not JSON" in answer.json()["detail"]
    assert history_of(alice, "d") == [] and checkpoint_of(alice, "d") is None
    assert model_server.requests == []


def test_the_checkpoint_format_reads_back_what_it_wrote() -> None:
    from langchain_core.messages import AIMessage, ToolMessage
    from langgraph.types import Interrupt, Send

    value = {
        "messages": [AIMessage("hi", id="a", tool_calls=[{"name": "f", "args": {"x": 1}, "id": "c"}])],
        "tool": ToolMessage("out", tool_call_id="c", id="t"),
        "pending": [Interrupt({"question": "ok?"}, id="i1"), Send("node", {"n": (1, 2)})],
        "user data": {"$type": "not ours", "pair": (1, "a")},
        "plain": [None, True, 1.5, "x"],
    }
    encoded = encode(value)
    assert json.loads(json.dumps(encoded)) == encoded
    decoded = decode(json.loads(json.dumps(encoded)))
    assert decoded["messages"][0] == value["messages"][0] and decoded["tool"] == value["tool"]
    assert decoded["pending"][0].value == {"question": "ok?"} and decoded["pending"][0].id == "i1"
    assert decoded["pending"][1] == value["pending"][1]
    assert decoded["user data"] == value["user data"] and decoded["plain"] == value["plain"]
    for bad in (float("nan"), b"bytes", {1: "a"}, {"s": {1, 2}}):
        with pytest.raises(CheckpointNotJSON):
            encode(bad)
    with pytest.raises(CheckpointUnreadable):
        decode({"$type": "pickle", "value": "gASV..."})


def test_a_failing_model_in_messages_mode_commits_nothing_and_hides_the_key(alice, model_server) -> None:
    assert alice.post("/secrets", {"name": "provider", "value": SECRET}).status_code == 201
    graph_agent(alice, model_server, api_key={"secret": "provider"})
    assert run(alice, "g", "first", "m").status_code == 200
    assert model_server.last.headers["authorization"] == f"Bearer {SECRET}"
    model_server.fail(401, f"Incorrect API key provided: {SECRET}")
    answer = run(alice, "g", "second", "m")
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed"
    assert "401" in answer.json()["detail"] and SECRET not in answer.content.decode()
    assert SECRET not in (Run.objects.get(pk=answer.json()["run_id"]).error or "")
    assert texts_of(alice, "m") == [("user", "first"), ("assistant", "reply to: first")]


@pytest.mark.parametrize("keyed", [True, False])
def test_nothing_of_the_servers_openai_environment_reaches_a_tenants_server(alice, model_server, monkeypatch, keyed):
    for name, value in [("OPENAI_ORG_ID", "org-env"), ("OPENAI_PROJECT_ID", "proj-env"), ("OPENAI_API_KEY", "sk-env")]:
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "X-Server-Token: t0k3n\nAuthorization: Bearer sk-custom-env")
    if keyed:
        assert alice.post("/secrets", {"name": "provider", "value": SECRET}).status_code == 201
    graph_agent(alice, model_server, **({"api_key": {"secret": "provider"}} if keyed else {}))
    assert run(alice, "g", "hi", "env").status_code == 200
    headers = model_server.last.headers
    assert not {"openai-organization", "openai-project", "x-server-token"} & set(headers)
    assert headers.get("authorization") == (f"Bearer {SECRET}" if keyed else None)


@pytest.mark.parametrize("failure", ["timeout", "private", "synchronous"])
def test_model_calls_go_only_through_the_guarded_client(alice, model_server, settings, failure) -> None:
    graph_agent(alice, model_server, graph="blocking" if failure == "synchronous" else "chat")
    if failure == "timeout":
        settings.AK_AGENTS = {**settings.AK_AGENTS, "TIMEOUT": 0.3}
        model_server.reply("late", delay=3)
    elif failure == "private":
        settings.AK_AGENTS = {**settings.AK_AGENTS, "ALLOW_PRIVATE_URLS": False}
    answer = run(alice, "g", "hi", "t")
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed"
    detail = answer.json()["detail"]
    if failure == "timeout":
        assert "did not answer within 0.3 s" in detail
    else:
        assert "refused" in detail and ("non-public" in detail if failure == "private" else "asynchronously" in detail)
        assert model_server.requests == []
    assert history_of(alice, "t") == []


def test_runs_with_different_keys_share_the_compiled_graph_not_the_key(alice, model_server) -> None:
    for name in ("key-a", "key-b"):
        assert alice.post("/secrets", {"name": name, "value": f"sk-{name}"}).status_code == 201
    config = {"graph": "chat", "base_url": model_server.url, "model": "m1", "options": {"system": "shared"}}
    framework = get_framework("langgraph")
    agents = [
        AgentSpec(name, "langgraph", framework.validate_config({**config, "api_key": {"secret": f"key-{name}"}}))
        for name in ("a", "b")
    ]
    model_server.reply_with(lambda body: Reply(f"to {body['messages'][-1]['content']}", delay=0.3))
    built = len(agent_graphs.BUILT)

    async def both() -> list[str]:
        sessions = [Session(f"s-{agent.name}-{i}", tenant=alice.tenant.slug) for i in range(3) for agent in agents]
        runs = [runner.run(agents[i % 2], session, f"from {agents[i % 2].name}") for i, session in enumerate(sessions)]
        return await asyncio.gather(*runs)

    started = time.monotonic()
    replies = asyncio.run(both())
    assert time.monotonic() - started < 6 * 0.3  # they overlapped
    assert replies == ["to from a", "to from b"] * 3
    requests = model_server.requests
    assert len(requests) == 6
    for request in requests:
        sender = request.body["messages"][-1]["content"].removeprefix("from ")
        assert request.headers["authorization"] == f"Bearer sk-key-{sender}"
    assert len(agent_graphs.BUILT) - built <= 1  # one graph for (chat, its options), built once at most

    async def cached() -> tuple[object, object]:
        return await graph_for("chat", {"system": "shared"}), await graph_for("chat", {"system": "shared"})

    first, second = asyncio.run(cached())
    assert first is second and first.checkpointer is None  # shared, and never given a run's saver


def test_a_checkpoint_run_does_not_change_the_shared_graph(alice, model_server) -> None:
    graph_agent(alice, model_server, graph="chat", mode="checkpoint")
    assert run(alice, "g", "hello", "x").status_code == 200
    shared = asyncio.run(graph_for("chat", {}))
    assert shared.checkpointer is None
