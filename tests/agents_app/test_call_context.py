"""The tenant reaches the deployment's tools and graphs, and a deployment may keep a tool or a graph
for some tenants: ``CallContext`` (``agents_app.frameworks.context``), ``GraphContext``,
``AK_AGENTS__TOOL_TENANTS`` and ``AK_AGENTS__GRAPH_TENANTS``. Runs go through the API to the
project's model server (a real HTTP server); nothing is mocked."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agents_app.frameworks import AgentSpec, get_framework
from agents_app.models import Run
from agents_app.runner import runner
from agents_app.runs.execute import run_execute
from sessions_app.core import Session
from tests.modelserver import ModelServer, Reply

TOOLS = {
    "whoami": "tests.agent_tools.whoami",
    "add": "tests.agent_tools.add",
    "get_weather": "tests.agent_tools.get_weather",
}
GRAPHS = {"who": "tests.agent_graphs.who", "chat": "tests.agent_graphs.chat"}


@pytest.fixture(autouse=True)
def declared(settings) -> None:
    settings.AK_AGENTS = {**settings.AK_AGENTS, "TOOLS": TOOLS, "GRAPHS": GRAPHS}


def keep_for(settings, *, tools: dict[str, Any] | None = None, graphs: dict[str, Any] | None = None) -> None:
    """Keep tools and graphs for some tenants, as ``AK_AGENTS__TOOL_TENANTS`` and
    ``AK_AGENTS__GRAPH_TENANTS`` do: ``{name: [tenant slug, ...]}``."""
    settings.AK_AGENTS = {
        **settings.AK_AGENTS,
        "TOOL_TENANTS": {name: frozenset(slugs) for name, slugs in (tools or {}).items()},
        "GRAPH_TENANTS": {name: frozenset(slugs) for name, slugs in (graphs or {}).items()},
    }


def tools_agent(client, server: ModelServer, name: str = "bot", tools: tuple[str, ...] = ("whoami",)):
    config = {"base_url": server.url, "model": "m1", "tools": list(tools)}
    return client.post("/agents", {"name": name, "framework": "openai_agents", "config": config})


def graph_agent(client, server: ModelServer, name: str = "g", graph: str = "who"):
    config = {"graph": graph, "base_url": server.url, "model": "m1"}
    return client.post("/agents", {"name": name, "framework": "langgraph", "config": config})


def run(client, agent: str, message: str, session_id: str):
    return client.post("/run", {"agent": agent, "message": message, "session_id": session_id})


def calls_whoami(body: dict[str, Any]) -> Reply:
    """The model: call ``whoami``, then answer with what it and the turn's earlier answers said."""
    messages = body["messages"]
    if messages[-1]["role"] != "tool":
        return Reply(tool_calls=[{"name": "whoami", "arguments": {}}])
    turn = messages[max(i for i, m in enumerate(messages) if m["role"] == "user") :]
    said = [m["content"] for m in turn if m["role"] == "assistant" and m.get("content")]
    return Reply(" | ".join([*said, f"tool: {messages[-1]['content']}"]))


def who(tenant: str, session: str, run_id: str | None, agent: str) -> str:
    return f"tenant={tenant} session={session} run={run_id} agent={agent}"


# --- the context a tool gets ---------------------------------------------------------------------


def test_a_tool_gets_the_tenant_session_run_and_agent_of_its_run(make_tenant, model_server) -> None:
    """Two tenants, one session id: each tool call works for its own tenant."""
    alice, bob = make_tenant(), make_tenant()
    model_server.reply_with(calls_whoami)
    for client in (alice, bob):
        assert tools_agent(client, model_server).status_code == 201
    run_ids = []
    for client in (alice, bob, alice):
        answer = run(client, "bot", "who am I?", "shared")
        assert answer.status_code == 200, answer.json()
        expected = who(client.tenant.slug, "shared", answer.json()["run_id"], "bot")
        assert answer.json()["result"] == f"tool: {expected}"
        run_ids.append(answer.json()["run_id"])
    results = [m for m in alice.get("/sessions/shared/messages").json()["messages"] if m.get("kind") == "tool_result"]
    assert [m["content"] for m in results] == [who(alice.tenant.slug, "shared", run_ids[i], "bot") for i in (0, 2)]


def test_a_queued_run_and_a_python_api_run_give_their_tools_the_context(alice, model_server) -> None:
    model_server.reply_with(calls_whoami)
    assert tools_agent(alice, model_server).status_code == 201
    queued = alice.post("/run", {"agent": "bot", "message": "hi", "session_id": "q", "async": True})
    assert queued.status_code == 202
    run_id = queued.json()["run_id"]
    asyncio.run(run_execute(run_id=run_id, worker="test"))
    ended = alice.get(f"/runs/{run_id}").json()
    assert ended["status"] == "succeeded" and ended["result"] == f"tool: {who(alice.tenant.slug, 'q', run_id, 'bot')}"

    # The Python API records no run: the tool gets no run id, and the rest as always.
    spec = AgentSpec("pybot", "openai_agents", {"base_url": model_server.url, "model": "m1", "tools": ["whoami"]})
    reply = asyncio.run(runner.run(spec, Session(id="py", tenant=alice.tenant.slug), "hi"))
    assert reply == f"tool: {who(alice.tenant.slug, 'py', None, 'pybot')}"


# --- the context a graph gets --------------------------------------------------------------------


def test_a_graph_and_its_tools_get_the_tenant_of_their_run(make_tenant, model_server) -> None:
    alice, bob = make_tenant(), make_tenant()
    model_server.reply_with(calls_whoami)
    for client in (alice, bob):
        assert graph_agent(client, model_server).status_code == 201
    for client in (alice, bob):
        answer = run(client, "g", "who am I?", "shared")
        assert answer.status_code == 200, answer.json()
        expected = who(client.tenant.slug, "shared", answer.json()["run_id"], "g")
        assert answer.json()["result"] == f"node: {expected} | tool: {expected}"


# --- tools and graphs kept for some tenants ------------------------------------------------------


def test_a_tool_kept_for_some_tenants_is_unknown_to_the_others(make_tenant, model_server, settings) -> None:
    alice, bob = make_tenant(), make_tenant()
    keep_for(settings, tools={"whoami": [alice.tenant.slug], "add": [alice.tenant.slug, "another"]})
    assert tools_agent(alice, model_server, tools=("whoami", "add", "get_weather")).status_code == 201

    refused = tools_agent(bob, model_server, tools=("get_weather", "whoami"))
    assert refused.status_code == 400
    problem = refused.json()["fields"]["config.tools[1]"][0]
    assert problem == "unknown tool 'whoami'; this deployment offers: get_weather"  # alice's tools unseen
    assert tools_agent(bob, model_server, tools=("add",)).status_code == 400
    assert tools_agent(bob, model_server, tools=("get_weather",)).status_code == 201

    # The API's document lists the tools every tenant may use, and no other.
    schema = get_framework("openai_agents").config_schema()
    named, entry = schema["properties"]["tools"]["items"]["anyOf"]  # a name, or {"name", "needs_approval"}
    assert named["enum"] == entry["properties"]["name"]["enum"] == ["get_weather"]


def test_a_run_naming_a_tool_its_tenant_may_not_use_fails_and_commits_nothing(alice, model_server, settings) -> None:
    assert tools_agent(alice, model_server).status_code == 201  # saved while every tenant may use it
    keep_for(settings, tools={"whoami": ["another"]})
    answer = run(alice, "bot", "who am I?", "kept")
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed"
    assert "unknown tool 'whoami'" in answer.json()["detail"]
    assert Run.objects.get(pk=answer.json()["run_id"]).status == Run.Status.FAILED
    assert alice.get("/sessions/kept/messages").json()["messages"] == []
    assert model_server.requests == []

    keep_for(settings, tools={"whoami": [alice.tenant.slug]})
    model_server.reply_with(calls_whoami)
    answer = run(alice, "bot", "who am I?", "kept")
    assert answer.status_code == 200 and answer.json()["result"].startswith(f"tool: tenant={alice.tenant.slug} ")


def test_a_graph_kept_for_some_tenants_is_unknown_to_the_others(make_tenant, model_server, settings) -> None:
    alice, bob = make_tenant(), make_tenant()
    keep_for(settings, graphs={"who": [alice.tenant.slug]})
    assert graph_agent(alice, model_server).status_code == 201

    refused = graph_agent(bob, model_server)
    assert refused.status_code == 400
    assert refused.json()["fields"]["config.graph"] == ["must name one of the deployment's graphs: chat"]
    assert graph_agent(bob, model_server, graph="chat").status_code == 201
    assert get_framework("langgraph").config_schema()["properties"]["graph"]["enum"] == ["chat"]


def test_a_run_of_a_graph_its_tenant_may_not_use_fails_and_commits_nothing(alice, model_server, settings) -> None:
    assert graph_agent(alice, model_server).status_code == 201
    keep_for(settings, graphs={"who": ["another"]})
    answer = run(alice, "g", "who am I?", "kept")
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed"
    assert "no graph 'who'" in answer.json()["detail"]
    assert Run.objects.get(pk=answer.json()["run_id"]).status == Run.Status.FAILED
    assert alice.get("/sessions/kept/messages").json()["messages"] == []
    assert model_server.requests == []
