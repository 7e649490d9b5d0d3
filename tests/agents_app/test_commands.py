"""create_tenant, ensure_demo and chat, run as users run them."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from agents_app.models import Agent
from agents_app.services import agent_create
from sessions_app.models import ApiKey, Session, Tenant
from tests.services import ROOT


def test_create_tenant_prints_a_working_key_last(transactional_db) -> None:
    out = io.StringIO()
    call_command("create_tenant", "acme", "--name", "Acme Inc", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]
    assert Tenant.objects.get(slug="acme").name == "Acme Inc"
    assert Agent.objects.filter(tenant__slug="acme", name="echo").exists()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.post("/run", {"agent": "echo", "message": "hi"}, format="json").status_code == 200
    assert key not in "".join(ApiKey.objects.values_list("key_hash", flat=True))


def test_create_tenant_again_issues_a_new_key(transactional_db) -> None:
    keys = []
    for _ in range(2):
        out = io.StringIO()
        call_command("create_tenant", "acme", stdout=out)
        keys.append(out.getvalue().strip().splitlines()[-1])
    assert keys[0] != keys[1]
    assert Tenant.objects.filter(slug="acme").count() == 1
    assert ApiKey.objects.filter(tenant__slug="acme", revoked_at=None).count() == 2


def test_create_tenant_refuses_a_bad_slug(transactional_db) -> None:
    with pytest.raises(CommandError):
        call_command("create_tenant", "Not A Slug", stdout=io.StringIO())


def test_create_tenant_key_is_alone_on_the_last_line_of_stdout(tmp_path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "AK_VAR_DIR": str(tmp_path)}
    import os

    env = {**os.environ, **env}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    result = subprocess.run(
        [sys.executable, "manage.py", "create_tenant", "shell-co"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0
    last = result.stdout.rstrip("\n").splitlines()[-1]
    assert last.startswith("ak_") and " " not in last


def test_chat_makes_a_session_per_user_and_carries_on(transactional_db, monkeypatch) -> None:
    call_command("create_tenant", "demo", stdout=io.StringIO())
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\nagain\n/quit\n"))
    out = io.StringIO()
    call_command("chat", "--user", "ann", stdout=out)
    text = out.getvalue()
    assert "echo> echo[turns=1]: hello" in text
    assert "echo> echo[turns=2]: again" in text
    session = Session.objects.get(tenant__slug="demo")
    assert session.user.external_id == "ann" and session.session_id in text.splitlines()[0]
    monkeypatch.setattr(sys, "stdin", io.StringIO("third\n"))
    out = io.StringIO()
    call_command("chat", "--session", session.session_id, stdout=out)
    assert "echo[turns=3]: third" in out.getvalue()


def test_chat_names_a_missing_tenant_or_agent(transactional_db, monkeypatch) -> None:
    with pytest.raises(CommandError, match="create_tenant"):
        call_command("chat", "--tenant", "nobody", stdout=io.StringIO())
    call_command("create_tenant", "demo", stdout=io.StringIO())
    monkeypatch.setattr(sys, "stdin", io.StringIO("hi\n"))
    with pytest.raises(CommandError, match="no agent"):
        call_command("chat", "--agent", "ghost", stdout=io.StringIO())


def test_ensure_demo_prints_a_working_key_and_where_the_server_listens(transactional_db) -> None:
    out = io.StringIO()
    call_command("ensure_demo", "--url", "http://127.0.0.1:8765/", stdout=out)
    lines = dict(line.split(":", 1) for line in out.getvalue().splitlines())
    assert "http://127.0.0.1:8765/admin/" in lines["admin login"]
    assert "curl -s -X POST http://127.0.0.1:8765/run " in lines["try"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {lines['API key'].strip()}")
    response = client.post("/run", {"agent": "echo", "message": "hi"}, format="json")
    assert response.status_code == 200, response.content
    assert Tenant.objects.get(slug="demo").name == "Demo"


class Writes(io.StringIO):
    """stdout that remembers each write, to see a reply arrive in pieces."""

    def __init__(self) -> None:
        super().__init__()
        self.pieces: list[str] = []

    def write(self, text: str) -> int:
        self.pieces.append(text)
        return super().write(text)


def test_chat_streams_the_reply_and_switches_agents_on_the_same_session(transactional_db, monkeypatch, model_server):
    call_command("create_tenant", "demo", stdout=io.StringIO())
    tenant = Tenant.objects.get(slug="demo")
    config = {"base_url": model_server.url, "model": "m"}
    agent_create(tenant=tenant, name="gpt", framework="openai_chat", config=config)
    model_server.reply("one two three four")
    script = "hello\n/agent ghost\n/agent gpt\nhow are you\n/agent echo\nback\n/quit\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(script))
    out = Writes()
    call_command("chat", "--user", "ann", stdout=out)
    text = out.getvalue()
    assert "echo> echo[turns=1]: hello" in text
    assert "gpt> one two three four" in text
    assert "echo> echo[turns=3]: back" in text  # the same session: the gpt turn counted
    pieces = ["echo[turns=1]: ", "one ", "two ", "three ", "four"]
    assert all(piece in out.pieces for piece in pieces)  # written as they came, word by word
    sent = model_server.last.body["messages"]
    assert sent[0] == {"role": "user", "content": "hello"} and sent[-1] == {"role": "user", "content": "how are you"}
