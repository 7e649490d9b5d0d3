"""A session's compaction (``agents_app.compaction``): the config, the window a run's model is sent
after a summary, the compaction task against the project's model server, over every store."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from agents_app.compaction.queue import _mark, compaction_done, compaction_queue
from agents_app.compaction.summarise import INSTRUCTIONS
from agents_app.compaction.window import COMPACTION_SCOPE, SUMMARY_HEADING, latest_summary
from agents_app.models import Agent, UsageDaily
from agents_app.tasks import compact_session
from sessions_app.models import Session
from sessions_app.stores import get_store
from sessions_app.stores.base import SessionKey
from tests.modelserver import ModelServer, Reply

SUMMARY = "The user asked q1 to q3; each was answered."


def agent(alice, name: str, server: ModelServer, **config: object):
    body = {"name": name, "framework": "openai_chat", "config": {"base_url": server.url, "model": "m1", **config}}
    return alice.post("/agents", body)


def summarising(server: ModelServer, summary: str = SUMMARY) -> None:
    """The model server answers ``summary`` to a summariser's request, as usual to the others."""
    server.reply_with(lambda body: Reply(summary) if body["messages"][-1]["content"].startswith(INSTRUCTIONS) else None)


def chat(alice, turns: range, session_id: str = "long") -> None:
    for turn in turns:
        answer = alice.post("/run", {"agent": "gpt", "message": f"q{turn}", "session_id": session_id})
        assert answer.status_code == 200, answer.json()


def compact(alice, session_id: str = "long") -> str:
    session = Session.objects.get(tenant=alice.tenant, session_id=session_id)
    return compact_session(session.pk, Agent.objects.get(tenant=alice.tenant, name="gpt").pk)


def stored(alice, session_id: str = "long") -> list[dict]:
    page = alice.get(f"/sessions/{session_id}/messages?limit=100").json()
    return page["messages"]


@pytest.fixture
def compacting(alice, model_server):
    """``gpt`` compacted past 6 entries, keeping 2, by ``summariser``."""
    assert agent(alice, "summariser", model_server, system_prompt="You summarise.").status_code == 201
    made = agent(alice, "gpt", model_server, history=8, compaction={"after": 6, "keep": 2, "agent": "summariser"})
    assert made.status_code == 201, made.json()
    summarising(model_server)
    return alice


@pytest.mark.parametrize(
    ("compaction", "field", "says"),
    [
        ([6, 2], "config.compaction", "must be an object"),
        ({"keep": 2, "agent": "summariser"}, "config.compaction.after", "required"),
        ({"after": 6, "keep": 6, "agent": "summariser"}, "config.compaction.keep", "less than after"),
        ({"after": 6, "keep": 0, "agent": "summariser"}, "config.compaction.keep", "1 or more"),
        ({"after": 8, "keep": 2, "agent": "summariser"}, "config.compaction.after", "less than the 8 entries"),
        ({"after": 6, "keep": 2, "agent": "nobody"}, "config.compaction.agent", "no agent named 'nobody'"),
        ({"after": 6, "keep": 2, "agent": "gpt"}, "config.compaction.agent", "another agent"),
        ({"after": 6, "keep": 2, "agent": "summariser", "when": 1}, "config.compaction.when", "unknown option"),
        ({"after": True, "keep": 2, "agent": "summariser"}, "config.compaction.after", "integer"),
    ],
)
def test_a_bad_compaction_is_a_400_naming_its_field(alice, model_server, compaction, field, says) -> None:
    assert agent(alice, "summariser", model_server).status_code == 201
    answer = agent(alice, "gpt", model_server, history=8, compaction=compaction)
    assert answer.status_code == 400
    assert says in " ".join(answer.json()["fields"][field]), answer.json()
    assert not Agent.objects.filter(tenant=alice.tenant, name="gpt").exists()


def test_every_bad_field_is_named_at_once(alice, model_server) -> None:
    answer = agent(alice, "gpt", model_server, history=-1, compaction={"after": 1, "keep": 0, "agent": "../x"})
    assert answer.status_code == 400
    fields = answer.json()["fields"]
    assert {"config.history", "config.compaction.after", "config.compaction.keep", "config.compaction.agent"} <= set(
        fields
    )


def test_an_agent_that_reads_no_history_cannot_be_compacted(alice, model_server) -> None:
    assert agent(alice, "summariser", model_server).status_code == 201
    config = {"compaction": {"after": 6, "keep": 2, "agent": "summariser"}}
    answer = alice.post("/agents", {"name": "counter", "framework": "echo", "config": config})
    assert answer.status_code == 400
    assert "reads none of the session's history" in str(answer.json()["fields"]["config.compaction"])


def test_the_summariser_is_one_of_the_tenants_agents(make_tenant, model_server) -> None:
    alice, bob = make_tenant(), make_tenant()
    assert agent(bob, "summariser", model_server).status_code == 201
    answer = agent(alice, "gpt", model_server, history=8, compaction={"after": 6, "keep": 2, "agent": "summariser"})
    assert answer.status_code == 400
    assert "no agent named 'summariser'" in str(answer.json()["fields"]["config.compaction.agent"])


def test_the_summariser_cannot_be_deleted_while_an_agent_names_it(compacting) -> None:
    answer = compacting.delete("/agents/summariser")
    assert answer.status_code == 409
    assert answer.json()["agents"] == ["gpt"]
    config = compacting.get("/agents/gpt").json()["config"]
    assert config["compaction"] == {"after": 6, "keep": 2, "agent": "summariser"}


def test_a_compacted_session_sends_the_model_the_summary_and_what_it_does_not_cover(
    compacting, model_server, store, use_store
) -> None:
    use_store(store)
    chat(compacting, range(1, 5))  # 8 entries: past 6
    assert compact(compacting) == "compacted"
    summariser_asked = model_server.last.body["messages"]
    assert summariser_asked[0] == {"role": "system", "content": "You summarise."}
    asked = summariser_asked[-1]["content"]
    assert "user: q1\nassistant: reply to: q1" in asked and "user: q3\nassistant: reply to: q3" in asked
    assert "q4" not in asked  # the latest 2 entries are kept as they are

    chat(compacting, range(5, 6))
    assert model_server.last.body["messages"] == [
        {"role": "user", "content": f"{SUMMARY_HEADING}\n{SUMMARY}"},
        {"role": "user", "content": "q4"},
        {"role": "assistant", "content": "reply to: q4"},
        {"role": "user", "content": "q5"},
    ]
    history = stored(compacting)
    assert len(history) == 11  # 5 turns and the summary, all readable
    summary = history[8]
    assert (summary["role"], summary["kind"], summary["content"]) == ("system", "summary", SUMMARY)
    assert summary["data"] == {"from": 0, "covers": 6, "agent": "summariser"}
    assert [m["content"] for m in history if m["role"] == "user"] == [f"q{n}" for n in range(1, 6)]
    key = SessionKey(compacting.tenant.slug, "long")
    pointer = latest_summary(get_store().load(key, scopes=(COMPACTION_SCOPE,), window=0))
    assert (pointer.at, pointer.covers, pointer.content) == (8, 6, SUMMARY)


def test_a_second_compaction_summarises_the_first_summary_and_what_came_after(compacting, model_server) -> None:
    chat(compacting, range(1, 5))
    assert compact(compacting) == "compacted"
    assert compact(compacting) == "not_due"
    summarising(model_server, "Second summary.")
    chat(compacting, range(5, 8))  # 2 kept + 6 new past the first summary: 8 > 6
    assert compact(compacting) == "compacted"
    asked = model_server.requests[-1].body["messages"][-1]["content"]
    assert f"Summary of what came before:\n{SUMMARY}" in asked
    assert "user: q4" in asked and "user: q6" in asked and "q7" not in asked
    assert SUMMARY not in asked.split("Conversation:")[1]  # the summary entry is not summarised again
    chat(compacting, range(8, 9))
    sent = model_server.last.body["messages"]
    assert sent[0] == {"role": "user", "content": f"{SUMMARY_HEADING}\nSecond summary."}
    assert [m["content"] for m in sent[1:]] == ["q7", "reply to: q7", "q8"]
    kinds = [m.get("kind") for m in stored(compacting)]
    assert kinds.count("summary") == 2


def test_a_failing_summariser_leaves_the_session_as_it_was(compacting, model_server, caplog) -> None:
    chat(compacting, range(1, 5))
    model_server.fail(500, "the summariser is down")
    assert compact(compacting) == "failed"
    assert "compaction by 'summariser' failed" in caplog.text
    assert [m.get("kind") for m in stored(compacting)] == [None] * 8
    chat(compacting, range(5, 6))  # the window as before: the latest 8 entries
    assert [m["content"] for m in model_server.last.body["messages"]][:2] == ["q1", "reply to: q1"]
    assert not UsageDaily.objects.filter(tenant=compacting.tenant, agent="summariser").exists()


def test_the_summariser_s_tokens_count_in_the_tenant_s_usage(compacting) -> None:
    chat(compacting, range(1, 5))
    assert compact(compacting) == "compacted"
    row = UsageDaily.objects.get(tenant=compacting.tenant, agent="summariser")
    assert (row.runs, row.prompt_tokens, row.completion_tokens, row.session_id) == (1, 10, 5, "long")


def test_a_run_past_after_queues_one_compaction_at_a_time(compacting) -> None:
    chat(compacting, range(1, 4))  # 6 entries: not past 6
    session = Session.objects.get(tenant=compacting.tenant, session_id="long")
    assert cache.get(_mark(session.pk)) is None
    chat(compacting, range(4, 5))  # 8: queued
    assert cache.get(_mark(session.pk)) is not None
    gpt = Agent.objects.get(tenant=compacting.tenant, name="gpt")
    assert compaction_queue(session_pk=session.pk, agent_pk=gpt.pk) is False  # one is queued already
    compaction_done(session_pk=session.pk)
    assert compaction_queue(session_pk=session.pk, agent_pk=gpt.pk) is True
    compaction_done(session_pk=session.pk)


def test_another_tenant_s_agent_never_compacts_a_session(make_tenant, model_server) -> None:
    alice, bob = make_tenant(), make_tenant()
    for tenant in (alice, bob):
        assert agent(tenant, "summariser", model_server).status_code == 201
    assert agent(alice, "gpt", model_server, history=8).status_code == 201
    made = agent(bob, "gpt", model_server, history=8, compaction={"after": 6, "keep": 2, "agent": "summariser"})
    assert made.status_code == 201
    chat(alice, range(1, 5))
    session = Session.objects.get(tenant=alice.tenant, session_id="long")
    assert compact_session(session.pk, Agent.objects.get(tenant=bob.tenant, name="gpt").pk) == "skipped"
    assert [m.get("kind") for m in stored(alice)] == [None] * 8


@pytest.mark.parametrize(
    ("framework", "extra"),
    [("openai_agents", {}), ("pydantic_ai", {}), ("smolagents", {}), ("langgraph", {"graph": "chat"})],
)
def test_every_framework_that_reads_the_window_sends_the_summary(
    alice, model_server, settings, framework, extra
) -> None:
    from tests.agents_app.test_langgraph import GRAPHS
    from tests.agents_app.test_smolagents import final

    settings.AK_AGENTS = {**settings.AK_AGENTS, "GRAPHS": GRAPHS}
    assert agent(alice, "summariser", model_server).status_code == 201
    config = {"base_url": model_server.url, "model": "m1", "history": 8, **extra}
    config["compaction"] = {"after": 6, "keep": 2, "agent": "summariser"}
    made = alice.post("/agents", {"name": "gpt", "framework": framework, "config": config})
    assert made.status_code == 201, made.json()

    def answer(body: dict) -> Reply | None:
        if str(body["messages"][-1]["content"]).startswith(INSTRUCTIONS):
            return Reply("Earlier turns, summarised.")
        return final("ok") if framework == "smolagents" else None

    model_server.reply_with(answer)
    chat(alice, range(1, 5))
    assert "q1" in str(model_server.last.body["messages"])
    assert compact(alice) == "compacted"
    chat(alice, range(5, 6))
    sent = str(model_server.last.body["messages"])
    assert f"{SUMMARY_HEADING}\\nEarlier turns, summarised." in sent
    assert "q4" in sent and "q5" in sent
    assert "q1" not in sent and "q3" not in sent  # covered by the summary
