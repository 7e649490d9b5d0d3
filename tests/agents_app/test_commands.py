"""create_tenant, ensure_demo and chat, run as users run them."""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from agents_app.models import Agent
from agents_app.services import agent_create
from sessions_app.models import ApiKey, Session, Tenant
from sessions_app.services import api_key_revoke
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


# --- chat as a new user meets it ------------------------------------------------------------------

PRODUCTION_LIKE = ("DJANGO_DEBUG", "DJANGO_SECRET_KEY", "AK_SECRETS_KEY")


def manage(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def without(*names: str, **extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in names}, **extra}


@pytest.mark.parametrize("args", [("chat", "--help"), ("chat", "-h"), ("help", "chat")])
def test_chat_help_works_without_debug_or_secrets(args) -> None:
    result = manage(*args, env=without(*PRODUCTION_LIKE))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: manage.py chat") and "--session SESSION" in result.stdout
    assert "/quit, /exit, Ctrl-D or Ctrl-C" in " ".join(result.stdout.split())  # wrapped by argparse
    assert result.stderr == ""


def test_only_help_gets_past_the_missing_secrets() -> None:
    result = manage("chat", env=without(*PRODUCTION_LIKE))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0, result.stderr  # one line, no traceback
    assert result.stderr.startswith("ImproperlyConfigured: DJANGO_SECRET_KEY must be set")


def test_chat_on_a_database_not_migrated_is_one_line(tmp_path) -> None:
    env = without(DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}", AK_VAR_DIR=str(tmp_path), DJANGO_DEBUG="1")
    result = manage("chat", env=env, stdin="hi\n")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("CommandError: the database is not ready") and "migrate" in result.stderr


def test_chat_ignores_empty_lines_and_ends_at_the_end_of_its_input(transactional_db, monkeypatch) -> None:
    call_command("create_tenant", "demo", stdout=io.StringIO())
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\n\n   \nagain\n"))
    out = io.StringIO()
    call_command("chat", "--user", "ann", stdout=out)
    text = out.getvalue()
    assert "echo> echo[turns=1]: hello" in text and "echo> echo[turns=2]: again" in text
    assert "(an empty line does nothing)" in text and "/quit, /exit, Ctrl-D or Ctrl-C ends" in text
    assert text.rstrip().splitlines()[-1].startswith("session ")


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> dict[str, str]:
    """A migrated SQLite database of its own with the demo tenant, for chats in other processes."""
    tmp_path = tmp_path_factory.mktemp("demo")
    env = without(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", AK_VAR_DIR=str(tmp_path), DJANGO_DEBUG="1")
    env.pop("AK_SESSION__IN_MEMORY__SOCKET", None)
    assert manage("migrate", "-v0", env=env).returncode == 0
    assert manage("create_tenant", "demo", env=env).returncode == 0
    return env


def test_chat_log_lines_go_between_replies_never_into_them(demo_db) -> None:
    # stdout and stderr into one pipe, as a terminal shows them
    result = subprocess.run(
        [sys.executable, "manage.py", "chat", "-v", "2", "--user", "ann"],
        cwd=ROOT,
        env=demo_db,
        input="hello\nagain\n",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    replies = [line for line in lines if line.startswith("echo> ")]
    assert replies == ["echo> echo[turns=1]: hello", "echo> echo[turns=2]: again"]
    logged = [line for line in lines if " INFO agents_app.runs.transitions: run " in line]
    assert len(logged) == 2 and all(line.endswith("succeeded (agent echo)") for line in logged)
    assert lines.index(replies[0]) < lines.index(logged[0]) < lines.index(replies[1]) < lines.index(logged[1])


def test_chat_shows_no_info_lines_by_default(demo_db) -> None:
    result = manage("chat", "--user", "ann", env=demo_db, stdin="hello\n")
    assert result.returncode == 0 and "echo> echo[turns=1]: hello\n" in result.stdout
    assert result.stderr == ""
    assert "this process's own" in result.stdout and "not shared with a server" in result.stdout


class Terminal:
    """A tmux pane running a command: keys in, the screen out."""

    def __init__(self, name: str, command: str) -> None:
        self.name = name
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "200", "-y", "50", command], check=True)

    def type(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def screen(self) -> str:
        shown = subprocess.run(
            ["tmux", "capture-pane", "-p", "-J", "-S", "-", "-t", self.name], capture_output=True, text=True
        )
        return shown.stdout

    def wait_for(self, text: str, *, count: int = 1) -> str:
        for _ in range(600):
            screen = self.screen()
            if screen.count(text) >= count:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never showed; the screen:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_chat_in_a_terminal(demo_db) -> None:
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in demo_db.items() if k.startswith(("DATABASE_", "AK_", "DJ")))
    chat_command = f"{shlex.quote(sys.executable)} manage.py chat -v 2 --user ann"
    command = f"cd {shlex.quote(str(ROOT))} && env {exports} {chat_command}; echo EXITED $?; sleep 60"
    terminal = Terminal(f"chat-{os.getpid()}", command)
    try:
        terminal.wait_for("you> ")
        terminal.type("hello", "Enter")
        terminal.wait_for("you> ", count=2)
        terminal.type("Enter")  # an empty line: ignored, the chat goes on
        terminal.wait_for("you> ", count=3)
        terminal.type("again", "Enter")
        terminal.wait_for("echo[turns=2]: again")
        terminal.type("C-d")
        screen = terminal.wait_for("EXITED 0")
    finally:
        terminal.close()
    lines = screen.splitlines()
    assert "echo> echo[turns=1]: hello" in lines and "echo> echo[turns=2]: again" in lines
    assert any(line.startswith("session ") for line in lines)
    for line in lines:  # every log line on a line of its own
        if " INFO " in line:
            assert re.match(r"^\d{4}-\d\d-\d\d [\d:,]+ INFO ", line), line


# --- ensure_demo: one demo key across restarts ----------------------------------------------------


def demo_key(out: io.StringIO) -> str:
    return dict(line.split(":", 1) for line in out.getvalue().splitlines())["API key"].strip()


def ensure_demo() -> str:
    out = io.StringIO()
    call_command("ensure_demo", stdout=out)
    return demo_key(out)


def test_ensure_demo_keeps_one_key_owner_only(transactional_db, settings, tmp_path) -> None:
    settings.VAR_DIR = tmp_path
    first, second = ensure_demo(), ensure_demo()
    assert first == second
    path = tmp_path / "demo-api-key"
    assert path.read_text().strip() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ApiKey.objects.filter(tenant__slug="demo", revoked_at=None).count() == 1
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {first}")
    assert client.post("/run", {"agent": "echo", "message": "hi"}, format="json").status_code == 200


def test_ensure_demo_reissues_a_revoked_deleted_or_missing_key(transactional_db, settings, tmp_path) -> None:
    settings.VAR_DIR = tmp_path
    path = tmp_path / "demo-api-key"
    first = ensure_demo()
    api_key_revoke(api_key=ApiKey.objects.get(key_hash=ApiKey.hash(first)))
    second = ensure_demo()
    assert second != first and path.read_text().strip() == second
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ApiKey.objects.filter(key_hash=ApiKey.hash(second)).delete()
    third = ensure_demo()
    assert third not in (first, second) and path.read_text().strip() == third
    path.unlink()
    fourth = ensure_demo()
    assert fourth != third and path.read_text().strip() == fourth
    path.chmod(0o644)  # a copy with wider rights is narrowed, and kept
    assert ensure_demo() == fourth and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_ensure_demo_does_not_take_another_tenants_key(transactional_db, settings, tmp_path) -> None:
    settings.VAR_DIR = tmp_path
    out = io.StringIO()
    call_command("create_tenant", "other", stdout=out)
    other = out.getvalue().strip().splitlines()[-1]
    (tmp_path / "demo-api-key").write_text(other + "\n")
    assert ensure_demo() != other


def test_chat_on_a_store_that_does_not_answer_is_one_line(demo_db, tmp_path) -> None:
    gone = tmp_path / "gone.sock"  # the socket of a make run that stopped
    result = manage("chat", env={**demo_db, "AK_SESSION__IN_MEMORY__SOCKET": str(gone)}, stdin="hi\n")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("CommandError: the session store did not answer")


def test_chat_says_when_a_run_waits_for_a_person(transactional_db, monkeypatch) -> None:
    from agents_app.services import agent_create
    from sessions_app.models import Tenant

    call_command("create_tenant", "demo", stdout=io.StringIO())
    agent_create(tenant=Tenant.objects.get(slug="demo"), name="approver", framework="echo", config={"approval": True})
    monkeypatch.setattr(sys, "stdin", io.StringIO("deploy\n"))
    out = io.StringIO()
    call_command("chat", "--agent", "approver", stdout=out)
    assert "waits for a person" in out.getvalue() and '"tool": "echo"' in out.getvalue()
