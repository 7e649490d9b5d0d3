"""/agents and /agents/<name>: every tenant has echo; a config is checked whole when the agent is
saved (every bad field named by its path, the secrets and handoffs it names existing); agents are
read, changed and deleted; what other agents use is not deleted (409 naming them)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from agents_app.models import Agent, Secret
from agents_app.runs.execute import run_execute
from agents_app.runs.submit import RunRequest, run_record

TOOLS = {"get_weather": "tests.agent_tools.get_weather"}
GRAPHS = {"chat": "tests.agent_graphs.chat"}
MODEL = {"base_url": "https://api.example.com/v1", "model": "m"}


@pytest.fixture(autouse=True)
def _deployment(settings) -> None:
    """The tools and graphs this deployment declares."""
    settings.AK_AGENTS = {**settings.AK_AGENTS, "TOOLS": TOOLS, "GRAPHS": GRAPHS}


def patch(client, path: str, data: object):
    return client.client.patch(path, data, format="json")


def fields_of(response) -> dict:
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    return response.json()["fields"]


def test_every_tenant_has_echo(alice) -> None:
    agents = alice.get("/agents").json()
    assert [(a["name"], a["framework"], a["config"]) for a in agents] == [("echo", "echo", {})]


def test_create_an_agent(alice) -> None:
    response = alice.post("/agents", {"name": "slow-echo", "framework": "echo", "config": {"delay_s": 1.5}})
    assert response.status_code == 201
    assert response.json()["config"] == {"delay_s": 1.5}
    assert [a["name"] for a in alice.get("/agents").json()] == ["echo", "slow-echo"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"framework": "echo"}, "name"),
        ({"name": "bad name!", "framework": "echo"}, "name"),
        ({"name": "x", "framework": "gpt-9000"}, "framework"),
        ({"name": "x", "framework": "echo", "config": {"delay_s": 61}}, "config.delay_s"),
        ({"name": "x", "framework": "echo", "config": {"delay_s": "soon"}}, "config.delay_s"),
        ({"name": "x", "framework": "echo", "config": {"temperature": 1}}, "config.temperature"),
        ({"name": "x", "framework": "echo", "config": [1]}, "config"),
        ({"name": "x", "framework": "echo", "config": {"delay_s": 1, "a\u0000": 1}}, "config"),
        ({"name": "x", "framework": "echo", "config": {"delay_s": 1, "a": ["b\u0000"]}}, "config.a[0]"),
        ({"name": " x", "framework": "echo"}, "name"),
        ({"name": "x\n", "framework": "echo"}, "name"),
    ],
)
def test_invalid_agents_are_400(alice, body: dict, field: str) -> None:
    alice.get("/agents")
    before = Agent.objects.count()
    assert field in fields_of(alice.post("/agents", body))
    assert Agent.objects.count() == before


def test_a_name_taken_is_a_400_naming_it(alice) -> None:
    """As CONTRACT.md has it: a body the API refuses is a 400 naming the bad field."""
    alice.get("/agents")
    before = Agent.objects.count()
    assert "name" in fields_of(alice.post("/agents", {"name": "echo", "framework": "echo"}))
    assert Agent.objects.count() == before


@pytest.mark.parametrize(
    ("framework", "config", "fields"),
    [
        ("echo", {"delay_s": 99, "speed": 1, "tone": "x"}, {"delay_s", "speed", "tone"}),
        ("openai_chat", {"base_url": "ftp://x", "model": 3}, {"base_url", "model"}),
        (
            "openai_chat",
            {"api_key": "sk-literal", "temperature": 3, "max_tokens": 0, "history": -1, "system_prompt": 1},
            {"base_url", "model", "api_key", "temperature", "max_tokens", "history", "system_prompt"},
        ),
        (
            "openai_agents",
            {
                **MODEL,
                "model": " ",
                "tools": ["get_weather", "nope", 3, "get_weather"],
                "handoffs": ["../x", "billing", "billing"],
                "max_turns": 0,
                "instructions": [],
            },
            {"model", "tools[1]", "tools[2]", "tools[3]", "handoffs[0]", "handoffs[2]", "max_turns", "instructions"},
        ),
        ("openai_agents", {**MODEL, "tools": "get_weather", "handoffs": {}}, {"tools", "handoffs"}),
        (
            "langgraph",
            {"mode": "x", "history": -1, "options": 3, "base_url": "https://api.example.com", "other": 1},
            {"graph", "mode", "history", "options", "model", "other"},
        ),
    ],
)
def test_every_bad_field_of_a_config_is_named_at_once(alice, framework, config, fields) -> None:
    answer = alice.post("/agents", {"name": "bad", "framework": framework, "config": config})
    assert set(fields_of(answer)) == {f"config.{field}" for field in fields}
    assert not Agent.objects.filter(tenant=alice.tenant, name="bad").exists()


def test_a_given_base_url_that_is_not_one_is_not_called_missing(alice) -> None:
    fields = fields_of(alice.post("/agents", {"name": "x", "framework": "openai_chat", "config": {"model": 1}}))
    assert fields["config.base_url"] == ["required: the API root, e.g. https://api.openai.com/v1"]
    assert "model name" in fields["config.model"][0]
    bad = {"base_url": "ftp://x", "model": "m"}
    fields = fields_of(alice.post("/agents", {"name": "x", "framework": "openai_chat", "config": bad}))
    assert set(fields) == {"config.base_url"} and not fields["config.base_url"][0].startswith("required")


def _nested(depth: int, leaf: object = 1, *, as_list: bool = False) -> object:
    value = leaf
    for _ in range(depth):
        value = [value] if as_list else {"a": value}
    return value


@pytest.mark.parametrize(
    ("framework", "config", "prefix"),
    [
        # Deeper than the body's own limit (64) is the parser's 400, naming "config" (test_json_depth.py).
        ("echo", {"delay_s": 1, "x": _nested(40)}, "config.x.a"),
        ("langgraph", {"graph": "chat", "options": _nested(60)}, "config.options.a"),
        ("openai_agents", {**MODEL, "tools": _nested(40, as_list=True)}, "config.tools[0]"),
    ],
)
def test_a_config_nested_too_deep_is_a_400_naming_where(alice, framework, config, prefix) -> None:
    fields = fields_of(alice.post("/agents", {"name": "deep", "framework": framework, "config": config}))
    [(field, [message])] = fields.items()
    assert field.startswith(prefix) and "nested too deep" in message
    deep = alice.post("/agents", {"name": "deep", "framework": "echo", "config": {}})
    assert deep.status_code == 201
    assert fields_of(patch(alice, "/agents/deep", {"config": {"x": _nested(400)}}))


def test_a_config_as_deep_as_allowed_is_saved(alice) -> None:
    config = {"graph": "chat", "options": _nested(30)}
    assert alice.post("/agents", {"name": "g", "framework": "langgraph", "config": config}).status_code == 201


def test_a_secret_named_must_be_one_of_the_tenants(alice, make_tenant) -> None:
    config = {**MODEL, "api_key": {"secret": "provider"}}
    body = {"name": "gpt", "framework": "openai_chat", "config": config}
    fields = fields_of(alice.post("/agents", body))
    assert set(fields) == {"config.api_key"} and "'provider'" in fields["config.api_key"][0]
    other = make_tenant()
    assert other.post("/secrets", {"name": "provider", "value": "sk-other"}).status_code == 201
    assert fields_of(alice.post("/agents", body))  # another tenant's secret is none of alice's
    assert alice.post("/secrets", {"name": "provider", "value": "sk-alice"}).status_code == 201
    assert alice.post("/agents", body).status_code == 201


def test_a_handoff_names_an_agent_of_the_tenant_that_can_take_it(alice, make_tenant) -> None:
    make_tenant().post("/agents", {"name": "billing", "framework": "openai_agents", "config": MODEL})
    config = {**MODEL, "handoffs": ["billing", "echo", "ghost"]}
    fields = fields_of(alice.post("/agents", {"name": "triage", "framework": "openai_agents", "config": config}))
    assert set(fields) == {"config.handoffs[0]", "config.handoffs[1]", "config.handoffs[2]"}
    assert "echo" in fields["config.handoffs[1]"][0] and "cannot take a handoff" in fields["config.handoffs[1]"][0]
    assert alice.post("/agents", {"name": "billing", "framework": "openai_agents", "config": MODEL}).status_code == 201
    config = {**MODEL, "handoffs": ["billing", "triage"]}  # itself too: as it is saved
    assert alice.post("/agents", {"name": "triage", "framework": "openai_agents", "config": config}).status_code == 201
    # Round: billing hands back to triage, which exists now.
    answer = patch(alice, "/agents/billing", {"config": {**MODEL, "handoffs": ["triage"]}})
    assert answer.status_code == 200 and answer.json()["config"]["handoffs"] == ["triage"]


def test_an_agent_is_read_changed_and_deleted(alice) -> None:
    made = alice.post("/agents", {"name": "bot", "framework": "echo", "config": {"delay_s": 1}}).json()
    got = alice.get("/agents/bot")
    assert got.status_code == 200 and got.json() == made

    changed = patch(alice, "/agents/bot", {"config": {}})  # the whole config, replaced
    assert changed.status_code == 200 and changed.json()["config"] == {}
    assert changed.json()["framework"] == "echo" and changed.json()["created_at"] == made["created_at"]
    to_chat = patch(alice, "/agents/bot", {"framework": "openai_chat", "config": MODEL})
    assert to_chat.status_code == 200
    assert (to_chat.json()["framework"], to_chat.json()["config"]) == ("openai_chat", MODEL)
    assert alice.get("/agents/bot").json() == to_chat.json()

    # Refused whole: nothing of it is saved.
    fields = fields_of(patch(alice, "/agents/bot", {"framework": "echo"}))  # its config is no echo config
    assert set(fields) == {"config.base_url", "config.model"}
    assert set(fields_of(patch(alice, "/agents/bot", {"config": {"base_url": "ftp://x"}}))) == {
        "config.base_url",
        "config.model",
    }
    assert "framework" in fields_of(patch(alice, "/agents/bot", {"framework": "gpt-9000"}))
    assert "config" in fields_of(patch(alice, "/agents/bot", {"config": [1]}))
    assert alice.get("/agents/bot").json() == to_chat.json()

    assert alice.delete("/agents/bot").status_code == 204
    gone = alice.get("/agents/bot")
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"
    assert "bot" not in [a["name"] for a in alice.get("/agents").json()]
    assert alice.delete("/agents/bot").status_code == 404
    assert patch(alice, "/agents/bot", {"config": {}}).status_code == 404
    # The name is free again.
    assert alice.post("/agents", {"name": "bot", "framework": "echo"}).status_code == 201


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_an_unknown_agent_and_another_tenants_are_404_json(alice, make_tenant, method) -> None:
    other = make_tenant()
    assert other.post("/agents", {"name": "theirs", "framework": "echo", "config": {"delay_s": 1}}).status_code == 201
    for name in ("ghost", "theirs"):
        if method == "patch":
            answer = patch(alice, f"/agents/{name}", {"config": {}})
        else:
            answer = getattr(alice, method)(f"/agents/{name}")
        assert answer.status_code == 404 and answer["Content-Type"] == "application/json"
        assert answer.json()["code"] == "not_found"
    assert other.get("/agents/theirs").json()["config"] == {"delay_s": 1}


def test_the_builtin_echo_is_read_only(alice) -> None:
    assert alice.get("/agents/echo").json()["framework"] == "echo"
    for answer in (alice.delete("/agents/echo"), patch(alice, "/agents/echo", {"config": {"delay_s": 1}})):
        assert answer.status_code == 409 and answer.json()["code"] == "builtin_agent"
    assert "config.delay_s" in fields_of(patch(alice, "/agents/echo", {"config": {"delay_s": 99}}))
    assert alice.get("/agents/echo").json()["config"] == {}
    assert alice.post("/run", {"agent": "echo", "message": "hi"}).json()["result"] == "echo[turns=1]: hi"


def test_an_agent_others_hand_off_to_is_not_deleted(alice) -> None:
    for name in ("billing", "refunds"):
        alice.post("/agents", {"name": name, "framework": "openai_agents", "config": MODEL})
    for name in ("triage", "sales"):
        config = {**MODEL, "handoffs": ["billing", "refunds"]}
        assert alice.post("/agents", {"name": name, "framework": "openai_agents", "config": config}).status_code == 201
    refused = alice.delete("/agents/billing")
    assert refused.status_code == 409
    assert refused.json()["code"] == "in_use" and refused.json()["agents"] == ["sales", "triage"]
    # Nor made an agent that cannot take a handoff.
    refused = patch(alice, "/agents/billing", {"framework": "echo", "config": {}})
    assert refused.status_code == 409 and refused.json()["agents"] == ["sales", "triage"]
    assert alice.get("/agents/billing").json()["framework"] == "openai_agents"
    for name in ("triage", "sales"):
        assert patch(alice, f"/agents/{name}", {"config": {**MODEL, "handoffs": ["refunds"]}}).status_code == 200
    assert alice.delete("/agents/billing").status_code == 204
    # An agent that hands off to itself alone may go.
    patch(alice, "/agents/refunds", {"config": {**MODEL, "handoffs": ["refunds"]}})
    assert alice.delete("/agents/refunds").json()["agents"] == ["sales", "triage"]


def test_a_secret_an_agent_uses_is_not_deleted(alice, make_tenant) -> None:
    alice.post("/secrets", {"name": "provider", "value": "sk-1"})
    alice.post("/secrets", {"name": "spare", "value": "sk-2"})
    uses = {**MODEL, "api_key": {"secret": "provider"}}
    for name, framework in (("gpt", "openai_chat"), ("assistant", "openai_agents")):
        assert alice.post("/agents", {"name": name, "framework": framework, "config": uses}).status_code == 201
    other = make_tenant()  # another tenant's agents, using its own secret of that name, are not alice's
    other.post("/secrets", {"name": "provider", "value": "sk-3"})
    other.post("/agents", {"name": "theirs", "framework": "openai_chat", "config": uses})

    refused = alice.delete("/secrets/provider")
    assert refused.status_code == 409
    assert refused.json()["code"] == "in_use" and refused.json()["agents"] == ["assistant", "gpt"]
    assert Secret.objects.filter(tenant=alice.tenant, name="provider").exists()
    assert alice.delete("/secrets/spare").status_code == 204
    patch(alice, "/agents/gpt", {"config": MODEL})
    assert alice.delete("/agents/assistant").status_code == 204  # a deleted agent uses nothing
    assert alice.delete("/secrets/provider").status_code == 204
    assert other.delete("/secrets/provider").json()["agents"] == ["theirs"]


def test_a_patched_config_is_what_the_next_run_uses(alice, model_server) -> None:
    config = {"base_url": model_server.url, "model": "m1"}
    alice.post("/agents", {"name": "gpt", "framework": "openai_chat", "config": config})
    assert alice.post("/run", {"agent": "gpt", "message": "one", "session_id": "p"}).status_code == 200
    answer = patch(alice, "/agents/gpt", {"config": {**config, "model": "m2", "system_prompt": "Be brief."}})
    assert answer.status_code == 200
    assert alice.post("/run", {"agent": "gpt", "message": "two", "session_id": "p"}).status_code == 200
    first, second = model_server.requests
    assert first.body["model"] == "m1" and second.body["model"] == "m2"
    assert second.body["messages"][0] == {"role": "system", "content": "Be brief."}
    patch(alice, "/agents/gpt", {"framework": "echo", "config": {}})
    three = alice.post("/run", {"agent": "gpt", "message": "three", "session_id": "p"})
    assert three.json()["result"] == "echo[turns=3]: three"
    assert len(model_server.requests) == 2


def test_a_deleted_agents_runs_and_sessions_stay(alice) -> None:
    alice.post("/agents", {"name": "bot", "framework": "echo"})
    ran = alice.post("/run", {"agent": "bot", "message": "hi", "session_id": "kept"}).json()
    assert alice.delete("/agents/bot").status_code == 204
    run = alice.get(f"/runs/{ran['run_id']}")
    assert run.status_code == 200 and run.json()["agent"] == "bot" and run.json()["status"] == "succeeded"
    assert [r["run_id"] for r in alice.get("/sessions/kept/runs").json()["runs"]] == [ran["run_id"]]
    messages = alice.get("/sessions/kept/messages").json()["messages"]
    assert [(m["role"], m["agent"]) for m in messages] == [("user", "bot"), ("assistant", "bot")]
    assert alice.post("/run", {"agent": "bot", "message": "again", "session_id": "kept"}).status_code == 404
    echoed = alice.post("/run", {"agent": "echo", "message": "still here", "session_id": "kept"})
    assert echoed.json()["result"] == "echo[turns=2]: still here"
    # A new agent of that name is another agent: the old runs stay the old one's.
    alice.post("/agents", {"name": "bot", "framework": "echo", "config": {"delay_s": 0}})
    assert Agent.all_objects.filter(tenant=alice.tenant, name="bot").count() == 2


@pytest.mark.parametrize(
    ("framework", "module", "config", "install"),
    [
        ("openai_agents", "agents", {}, "requirements/openai_agents.txt"),
        ("langgraph", "langgraph.graph", {"graph": "chat"}, "requirements/langgraph.txt"),
    ],
)
def test_an_agent_of_a_framework_whose_library_is_missing_is_a_400(
    alice, monkeypatch, framework, module, config, install
) -> None:
    """As on a deployment that did not install the framework's requirements: the import fails
    (``None`` in ``sys.modules`` is how Python spells a module that cannot be imported)."""
    monkeypatch.setitem(sys.modules, module, None)
    body = {"name": "x", "framework": framework, "config": {**MODEL, **config}}
    response = alice.post("/agents", body)
    assert "framework" in fields_of(response) and install in str(response.json())
    assert not Agent.objects.filter(tenant=alice.tenant, name="x").exists()


def test_a_run_queued_before_its_agent_was_deleted_still_runs(alice, django_capture_on_commit_callbacks) -> None:
    alice.post("/agents", {"name": "bot", "framework": "echo"})
    with django_capture_on_commit_callbacks(execute=False):  # not published: this test is the worker
        run, _ = run_record(RunRequest("bot", "later", session_id="q", mode="queued"), tenant=alice.tenant)
    assert alice.delete("/agents/bot").status_code == 204
    asyncio.run(run_execute(run_id=str(run.pk), worker="test-worker:1"))
    ran = alice.get(f"/runs/{run.pk}").json()
    assert (ran["status"], ran["agent"], ran["result"]) == ("succeeded", "bot", "echo[turns=1]: later")
