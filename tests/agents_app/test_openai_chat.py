"""The ``openai_chat`` framework in process, against the project's model server (a real HTTP server).

Conversations through gunicorn and a worker are in ``tests/live/test_real_agents.py``."""

from __future__ import annotations

import pytest

from agents_app.models import Run, Secret
from tests.agents_app.test_streaming import events_of
from tests.modelserver import ModelServer

SECRET = "sk-live-0123456789abcdef"


def chat_agent(alice, server: ModelServer, name: str = "gpt", **config: object) -> None:
    body = {"name": name, "framework": "openai_chat", "config": {"base_url": server.url, "model": "m1", **config}}
    answer = alice.post("/agents", body)
    assert answer.status_code == 201, answer.json()


def history_of(alice, session_id: str) -> list[tuple[str, str]]:
    messages = alice.get(f"/sessions/{session_id}/messages").json()["messages"]
    return [(m["role"], m["content"]) for m in messages]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"model": "m"}, "base_url"),
        ({"base_url": "ftp://x", "model": "m"}, "base_url"),
        ({"base_url": "https://api.example.com/v1"}, "model"),
        ({"base_url": "https://api.example.com/v1", "model": "m", "api_key": "sk-literal"}, "api_key"),
        ({"base_url": "https://api.example.com/v1", "model": "m", "api_key": {"secret": "../x"}}, "api_key"),
        ({"base_url": "https://api.example.com/v1", "model": "m", "history": -1}, "history"),
        ({"base_url": "https://api.example.com/v1", "model": "m", "temperature": 3}, "temperature"),
        ({"base_url": "https://api.example.com/v1", "model": "m", "max_tokens": 0}, "max_tokens"),
        ({"base_url": "https://api.example.com/v1", "model": "m", "tools": []}, "tools"),
    ],
)
def test_a_bad_config_is_a_400_naming_its_key(alice, config, field) -> None:
    answer = alice.post("/agents", {"name": "bad", "framework": "openai_chat", "config": config})
    assert answer.status_code == 400
    assert field in str(answer.json())


def test_a_private_base_url_is_refused_when_saved_and_when_run(alice, model_server, settings) -> None:
    chat_agent(alice, model_server)  # development: private addresses allowed
    settings.AK_AGENTS = {**settings.AK_AGENTS, "ALLOW_PRIVATE_URLS": False}
    refused = alice.post(
        "/agents", {"name": "other", "framework": "openai_chat", "config": {"base_url": model_server.url, "model": "m"}}
    )
    assert refused.status_code == 400 and "non-public" in str(refused.json())
    answer = alice.post("/run", {"agent": "gpt", "message": "hi", "session_id": "s"})
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed"
    assert "non-public" in answer.json()["detail"]
    assert model_server.requests == []  # refused before anything was sent


def test_a_conversation_sends_the_system_prompt_the_history_and_the_new_message(alice, model_server) -> None:
    chat_agent(alice, model_server, system_prompt="Be brief.", history=4, temperature=0.5, max_tokens=64)
    for turn in range(1, 6):
        answer = alice.post("/run", {"agent": "gpt", "message": f"q{turn}", "session_id": "conv"})
        assert answer.status_code == 200, answer.json()
        assert answer.json()["result"] == f"reply to: q{turn}"
        sent = model_server.last.body
        assert (sent["model"], sent["temperature"], sent["max_tokens"]) == ("m1", 0.5, 64)
        assert sent["stream"] is True  # every run's events are there to stream (GET /runs/<id>/events)
        expected = []
        for earlier in range(1, turn):
            expected += [
                {"role": "user", "content": f"q{earlier}"},
                {"role": "assistant", "content": f"reply to: q{earlier}"},
            ]
        assert sent["messages"] == [
            {"role": "system", "content": "Be brief."},
            *expected[-4:],
            {"role": "user", "content": f"q{turn}"},
        ]
    assert len(history_of(alice, "conv")) == 10
    run = alice.get(f"/runs/{answer.json()['run_id']}").json()
    assert run["usage"] == {"prompt_tokens": 10, "completion_tokens": 5}


def test_the_api_key_comes_from_a_secret_and_is_shown_nowhere(alice, model_server) -> None:
    assert alice.post("/secrets", {"name": "provider", "value": SECRET}).status_code == 201
    chat_agent(alice, model_server, api_key={"secret": "provider"})
    answer = alice.post("/run", {"agent": "gpt", "message": "hi", "session_id": "k"})
    assert answer.status_code == 200
    assert model_server.last.headers["authorization"] == f"Bearer {SECRET}"
    model_server.fail(401, f"Incorrect API key provided: {SECRET}")
    failed = alice.post("/run", {"agent": "gpt", "message": "again", "session_id": "k"})
    assert failed.status_code == 502 and "401" in failed.json()["detail"]
    shown = [
        answer.content,
        failed.content,
        alice.get("/agents").content,
        alice.get("/secrets").content,
        alice.get(f"/runs/{answer.json()['run_id']}").content,
        alice.get(f"/runs/{failed.json()['run_id']}").content,
        alice.get("/sessions/k/messages").content,
    ]
    assert not [body for body in shown if SECRET.encode() in body]
    assert SECRET not in (Run.objects.get(pk=failed.json()["run_id"]).error or "")


def test_a_missing_secret_fails_the_run_naming_it(alice, model_server) -> None:
    """Refused when the agent is saved, and checked again by the run: as for a secret removed
    behind the API's back (the admin, a script), which answers 409 while an agent uses it."""
    alice.post("/secrets", {"name": "nope", "value": SECRET})
    chat_agent(alice, model_server, api_key={"secret": "nope"})
    assert alice.delete("/secrets/nope").status_code == 409
    Secret.objects.filter(tenant=alice.tenant, name="nope").delete()
    answer = alice.post("/run", {"agent": "gpt", "message": "hi"})
    assert answer.status_code == 502 and "nope" in answer.json()["detail"]
    assert model_server.requests == []


@pytest.mark.parametrize("failure", ["status", "mid_stream", "timeout", "no_answer"])
def test_a_failing_server_fails_the_run_and_commits_nothing(alice, model_server, settings, failure) -> None:
    chat_agent(alice, model_server)
    assert alice.post("/run", {"agent": "gpt", "message": "first", "session_id": "f"}).status_code == 200
    if failure == "status":
        model_server.fail(500, "the GPU caught fire")
    elif failure == "mid_stream":
        model_server.fail_mid_stream(after_chunks=2)
    elif failure == "timeout":
        settings.AK_AGENTS = {**settings.AK_AGENTS, "TIMEOUT": 0.3}
        model_server.reply("late", delay=3)
    else:
        model_server.fail(200, "<html>not an API</html>")
    answer = alice.post("/run", {"agent": "gpt", "message": "second", "session_id": "f"})
    assert answer.status_code == 502 and answer.json()["code"] == "agent_failed"
    events = events_of(alice.get(f"/runs/{answer.json()['run_id']}/events"))
    assert events[-1][1] == "error" and events[-1][2]["code"] == "agent_failed"
    assert history_of(alice, "f") == [("user", "first"), ("assistant", "reply to: first")]
    run = Run.objects.filter(tenant=alice.tenant).order_by("-created_at").first()
    assert run.status == Run.Status.FAILED and run.error.startswith("ModelError")


def test_a_run_passes_the_models_pieces_on_to_its_events(alice, model_server) -> None:
    chat_agent(alice, model_server)
    model_server.reply("the quick brown fox", usage=(12, 4))
    run_id = alice.post("/run", {"agent": "gpt", "message": "go", "session_id": "st"}).json()["run_id"]
    events = events_of(alice.get(f"/runs/{run_id}/events"))
    deltas = [data["text"] for _, kind, data in events if kind == "delta"]
    assert len(deltas) > 1 and "".join(deltas) == "the quick brown fox"
    assert events[-1][1] == "done" and events[-1][2]["result"] == "the quick brown fox"
    assert model_server.last.body["stream"] is True
    assert model_server.last.body["stream_options"] == {"include_usage": True}
    run = alice.get(f"/runs/{run_id}").json()
    assert run["usage"] == {"prompt_tokens": 12, "completion_tokens": 4}
    assert history_of(alice, "st")[-1] == ("assistant", "the quick brown fox")
