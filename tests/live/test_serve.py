"""``make run``'s platform (``manage.py serve``) with its embedded defaults: SQLite or the suite's
database, the in-memory store, the filesystem broker and a worker in its own process.

A run the worker executes and one the web server executes must share their session: the
in-memory store is kept by ``serve`` and reached by both over its socket.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from tests import services
from tests.live.servers import LiveServers

UNSET = ("AK_SESSION__TYPE", "AK_SESSION__IN_MEMORY__SOCKET", "CELERY_BROKER_URL", "CELERY_TASK_DEFAULT_QUEUE")
#: gunicorn listens before its worker has loaded the application, which `make run` has import every
#: framework's SDK: past 30 s on a machine three times slower than usual, with the suite beside it.
BOOT = 120


def test_serve_shares_one_in_memory_session_between_the_server_and_the_worker(
    tmp_path: Path, live_servers: LiveServers
) -> None:
    database_url, drop = live_servers.database.copy()  # migrated
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(
        DATABASE_URL=database_url, AK_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="akplatform.settings"
    )
    manage = [sys.executable, str(services.ROOT / "manage.py")]
    made = subprocess.run(
        [*manage, "create_tenant", "dev"], env=env, check=True, cwd=services.ROOT, capture_output=True
    )
    headers = {"Authorization": f"Bearer {made.stdout.decode().strip().splitlines()[-1]}"}
    stray_control = services.ROOT / "control"
    had_stray_control = stray_control.exists()
    port = services.free_port()
    server = services.Server(
        args=[*manage, "serve", f"127.0.0.1:{port}"], port=port, cwd=tmp_path, env=env, log=tmp_path / "serve.log"
    )
    try:
        server.start(timeout=60)
        base = server.url
        services.wait_until_answered(f"{base}/health", timeout=BOOT)

        def run(message: str, **extra: object) -> requests.Response:
            body = {"agent": "echo", "message": message, "session_id": "mixed", **extra}
            return requests.post(f"{base}/run", json=body, headers=headers, timeout=30)

        assert run("one").json()["result"] == "echo[turns=1]: one"
        # The worker's embedded beat fires schedules too.
        at = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
        scheduled = {"agent": "echo", "message": "tick", "session_id": "scheduled", "at": at}
        schedule = requests.post(f"{base}/schedules", json=scheduled, headers=headers, timeout=30)
        assert schedule.status_code == 201, schedule.text
        queued = run("two", **{"async": True})
        assert queued.status_code == 202, queued.text
        deadline = time.monotonic() + 60
        while (done := requests.get(f"{base}/runs/{queued.json()['run_id']}", headers=headers, timeout=10).json())[
            "status"
        ] in ("queued", "running"):
            assert time.monotonic() < deadline, f"the async run did not finish: {done}; see {server.log}"
            time.sleep(0.1)
        assert (done["status"], done["result"]) == ("succeeded", "echo[turns=2]: two")
        assert run("three").json()["result"] == "echo[turns=3]: three"

        history = requests.get(f"{base}/sessions/mixed/messages", headers=headers, timeout=10).json()["messages"]
        assert [m["content"] for m in history if m["role"] == "user"] == ["one", "two", "three"]
        assert requests.delete(f"{base}/sessions/mixed", headers=headers, timeout=10).status_code == 204
        assert run("again").json()["result"] == "echo[turns=1]: again"

        runs_of = f"{base}/schedules/{schedule.json()['schedule_id']}/runs"
        while not (fired := requests.get(runs_of, headers=headers, timeout=10).json()) or fired[0]["status"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline + 30, f"the schedule did not fire: {fired}; see {server.log}"
            time.sleep(0.2)
        assert [(r["status"], r["result"]) for r in fired] == [("succeeded", "echo[turns=1]: tick")]
    finally:
        server.stop()
        drop()
    # The embedded broker keeps every folder it uses under AK_VAR_DIR, none in the working directory.
    assert (tmp_path / "var" / "broker" / "control").is_dir()
    assert not (tmp_path / "control").exists()
    assert stray_control.exists() == had_stray_control


def test_make_run_again_keeps_its_key_and_says_which_histories_went(tmp_path: Path, live_servers: LiveServers) -> None:
    """``make run``, stopped and run again: the same demo key; the sessions of the first run lost
    their history with its store, and the API, the server's start and the CLI say so."""
    database_url, drop = live_servers.database.copy()  # migrated: ``make run``'s migrate below has nothing to do
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(
        DATABASE_URL=database_url, AK_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="akplatform.settings"
    )
    # The test above serves with make run's default, every framework's SDK preloaded; this one's
    # echo runs need none, and its two platforms start without importing them.
    env["AK_AGENTS__PRELOAD"] = ""
    manage = [sys.executable, str(services.ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=services.ROOT)

    def make_run(log: str) -> tuple[services.Server, str]:
        """What ``make run`` does: ensure_demo (its key printed), then serve."""
        demo = subprocess.run([*manage, "ensure_demo"], env=env, check=True, cwd=services.ROOT, capture_output=True)
        key = dict(line.split(":", 1) for line in demo.stdout.decode().splitlines())["API key"].strip()
        port = services.free_port()
        server = services.Server(
            args=[*manage, "serve", f"127.0.0.1:{port}"], port=port, cwd=tmp_path, env=env, log=tmp_path / log
        )
        server.start(timeout=60)
        services.wait_until_answered(f"{server.url}/health", timeout=BOOT)
        return server, key

    def run(server: services.Server, key: str, message: str) -> requests.Response:
        body = {"agent": "echo", "message": message, "session_id": "kept"}
        return requests.post(f"{server.url}/run", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=180)

    first, key = make_run("first.log")
    try:
        assert run(first, key, "one").json()["result"] == "echo[turns=1]: one"
        assert run(first, key, "two").json()["result"] == "echo[turns=2]: two"
    finally:
        first.stop()
    second, again = make_run("second.log")
    try:
        assert again == key  # one demo key across restarts
        assert (tmp_path / "var" / "demo-api-key").stat().st_mode & 0o777 == 0o600
        started = (tmp_path / "second.log").read_text()
        assert "the 1 sessions with messages in the index lost their history" in started
        lost = run(second, key, "three")
        assert (lost.status_code, lost.json()["code"]) == (409, "session_expired"), lost.text
        assert run(second, key, "three").json()["result"] == "echo[turns=1]: three"  # starts over, said so

        # A chat without the socket has a store of its own: it refuses the server's session.
        alone = subprocess.run(
            [*manage, "chat", "--session", "kept"], env=env, cwd=services.ROOT, input=b"four\n", capture_output=True
        )
        assert alone.returncode == 1 and b"AK_SESSION__IN_MEMORY__SOCKET" in alone.stderr
        assert b"not shared with a server" in alone.stdout
        # With the socket serve printed, it carries the session on.
        socket_path = started.split("AK_SESSION__IN_MEMORY__SOCKET=", 1)[1].split()[0]
        shared = subprocess.run(
            [*manage, "chat", "--session", "kept"],
            env={**env, "AK_SESSION__IN_MEMORY__SOCKET": socket_path},
            cwd=services.ROOT,
            input=b"four\n",
            capture_output=True,
        )
        assert shared.returncode == 0, shared.stderr
        assert b"echo> echo[turns=2]: four" in shared.stdout and b"shared over" in shared.stdout
    finally:
        second.stop()
        drop()
