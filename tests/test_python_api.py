"""The Python API of the Agent Kernel docs, with our import paths, as the README shows it."""

from __future__ import annotations

import asyncio

import pytest

from agents_app.frameworks import AgentSpec
from agents_app.frameworks.base import Framework
from agents_app.runner import runner
from sessions_app.core import Session


@pytest.fixture(params=["in_memory", "redis", "dynamodb"])
def backend(request, make_store, use_store):
    return use_store(make_store(request.param))


def test_the_readme_example(backend, tenant_slug: str) -> None:
    session = Session(id="alice-1", tenant=tenant_slug)
    session.set("profile", {"name": "Alice", "langs": ["en", "fr"]})
    echo = AgentSpec(name="echo", framework="echo")
    assert asyncio.run(runner.run(echo, session, "hello")) == "echo[turns=1]: hello"
    assert asyncio.run(runner.run(echo, session, "again")) == "echo[turns=2]: again"
    assert session.get("profile") == {"name": "Alice", "langs": ["en", "fr"]}
    assert [m.content for m in session.history()] == ["hello", "echo[turns=1]: hello", "again", "echo[turns=2]: again"]
    assert Session(id="alice-1", tenant=tenant_slug).get("profile")["name"] == "Alice"


def test_per_agent_state_and_defaults(backend, tenant_slug: str) -> None:
    session = Session(tenant=tenant_slug)
    assert len(session.id) == 32
    session.set("mood", "calm", agent="planner")
    assert session.get("mood") is None
    assert session.get("mood", agent="planner") == "calm"
    assert session.get("missing", "fallback") == "fallback"
    session.delete_key("mood", agent="planner")
    assert session.get("mood", agent="planner") is None


def test_values_must_be_json(backend, tenant_slug: str) -> None:
    session = Session(tenant=tenant_slug)
    with pytest.raises(TypeError, match="JSON"):
        session.set("fn", lambda: None)


def test_clear_removes_the_session(backend, tenant_slug: str) -> None:
    session = Session(tenant=tenant_slug)
    session.set("k", 1)
    assert session.clear() is True
    assert session.get("k") is None and session.history() == []


def test_an_adapter_writes_state_with_its_messages(backend, tenant_slug: str, settings) -> None:
    """A framework's state writes are committed atomically with the run's messages."""

    class Counter(Framework):
        name = "counter"

        async def run(self, agent, session, message):
            seen = session.get("seen", 0) + 1
            session.set("seen", seen)
            session.set_shared("last_speaker", agent.name)
            return f"{seen} (of {session.total_messages // 2 + 1})"

    settings.AK_FRAMEWORKS = {**settings.AK_FRAMEWORKS, "counter": f"{__name__}.Counter"}
    globals()["Counter"] = Counter
    session = Session(tenant=tenant_slug)
    agent = AgentSpec(name="count-bot", framework="counter")
    assert asyncio.run(runner.run(agent, session, "a")) == "1 (of 1)"
    assert asyncio.run(runner.run(agent, session, "b")) == "2 (of 2)"
    assert session.get("seen", agent="count-bot") == 2
    assert session.get("last_speaker") == "count-bot"


class Recent(Framework):
    """Replies with the contents of the messages its run was given (at most ``window``)."""

    name = "recent"
    window = 3

    async def run(self, agent, session, message):
        return ",".join(m.content for m in session.messages) or "-"


def test_a_run_loads_only_the_history_its_framework_reads(backend, tenant_slug: str, settings) -> None:
    """``Framework.window`` bounds the run's load: echo reads no message, yet counts every turn."""
    settings.AK_FRAMEWORKS = {**settings.AK_FRAMEWORKS, "recent": f"{__name__}.Recent"}
    session = Session(tenant=tenant_slug)
    echo, recent = AgentSpec(name="echo", framework="echo"), AgentSpec(name="recent", framework="recent")
    for n in range(1, 4):
        assert asyncio.run(runner.run(echo, session, f"m{n}")) == f"echo[turns={n}]: m{n}"
    assert asyncio.run(runner.run(recent, session, "x")) == "echo[turns=2]: m2,m3,echo[turns=3]: m3"
    settings.AK_SESSION = {**settings.AK_SESSION, "WINDOW": 2}  # the setting bounds it too
    assert asyncio.run(runner.run(recent, session, "y")) == "x,echo[turns=2]: m2,m3,echo[turns=3]: m3"
