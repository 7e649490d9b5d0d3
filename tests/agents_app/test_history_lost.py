"""A session whose history is gone from the store while the index remembers it (the in-memory
store restarted, a session expired in Redis): the API, the console and the CLI say so, and the
index follows the store. Nothing runs on the vanished history.

"The store restarted" is a new, empty store of the same kind made the process's store, as a
restart of ``make run`` does; "expired" is the session's keys gone from a real Redis.
"""

from __future__ import annotations

import asyncio
import io
import sys

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from agents_app.models import Run
from agents_app.runs import execute
from agents_app.runs.execute import Step
from agents_app.runs.submit import RunRequest, run_record
from sessions_app.models import Session
from sessions_app.selectors import session_key
from sessions_app.stores import get_store
from sessions_app.stores.memory import InMemoryStore
from sessions_app.stores.memory_socket import MemoryStoreServer, SocketMemoryStore


def talk(client, session_id: str, *messages: str) -> list:
    return [client.post("/run", {"agent": "echo", "message": m, "session_id": session_id}) for m in messages]


def indexed(tenant, session_id: str) -> int:
    return Session.objects.get(tenant=tenant, session_id=session_id).message_count


@pytest.fixture
def restart(use_store):
    """Replace the process's store by a new, empty one of its kind: what a restart of ``make run`` does."""
    return lambda: use_store(InMemoryStore(ttl=3600))


def test_a_run_on_a_vanished_history_is_a_409_and_the_next_one_starts_over(alice, restart) -> None:
    assert [r.status_code for r in talk(alice, "s1", "one", "two", "three")] == [200, 200, 200]
    assert indexed(alice.tenant, "s1") == 6
    restart()
    lost = alice.post("/run", {"agent": "echo", "message": "four", "session_id": "s1"})
    assert lost.status_code == 409, lost.content
    assert lost.json()["code"] == "session_expired"
    assert "6 messages" in lost.json()["detail"] and "no longer in the session store" in lost.json()["detail"]
    assert indexed(alice.tenant, "s1") == 0  # the index follows the store
    assert get_store().history(session_key(Session.objects.get(session_id="s1"))) == []  # nothing ran
    run = Run.objects.filter(session__session_id="s1").order_by("-created_at").first()
    assert run.status == "failed" and run.error.startswith("session_expired:")
    again = alice.post("/run", {"agent": "echo", "message": "four", "session_id": "s1"})
    assert again.status_code == 200 and again.json()["result"] == "echo[turns=1]: four"
    assert indexed(alice.tenant, "s1") == 2
    messages = alice.get("/sessions/s1/messages").json()["messages"]
    assert [m["content"] for m in messages] == ["four", "echo[turns=1]: four"]


def test_the_agent_kernel_alias_and_a_stream_say_so_too(alice, restart) -> None:
    talk(alice, "s2", "one")
    talk(alice, "s3", "one")
    restart()
    chat = alice.post("/api/v1/chat", {"agent": "echo", "prompt": "two", "session_id": "s2"})
    assert (chat.status_code, chat.json()["code"]) == (409, "session_expired")
    stream = alice.post("/run", {"agent": "echo", "message": "two", "session_id": "s3", "stream": True})
    assert (stream.status_code, stream.json()["code"]) == (409, "session_expired")  # before any event, as busy is
    assert indexed(alice.tenant, "s2") == indexed(alice.tenant, "s3") == 0


def test_a_queued_run_on_a_vanished_history_fails_saying_so(alice, restart, django_capture_on_commit_callbacks):
    talk(alice, "s4", "one", "two")
    restart()
    with django_capture_on_commit_callbacks(execute=True):
        run, _ = run_record(RunRequest("echo", "three", session_id="s4", mode="queued"), tenant=alice.tenant)
    assert asyncio.run(execute.run_execute(run_id=str(run.pk), worker="w@host")) is Step.DONE
    run.refresh_from_db()
    assert run.status == "failed" and run.error.startswith("session_expired:") and "4 messages" in run.error
    assert indexed(alice.tenant, "s4") == 0
    assert get_store().history(session_key(run.session)) == []


def test_reading_a_vanished_history_empties_the_index_too(alice, restart) -> None:
    talk(alice, "s5", "one", "two")
    restart()
    page = alice.get("/sessions/s5/messages")
    assert page.status_code == 200 and page.json() == {"messages": [], "next": None}
    assert indexed(alice.tenant, "s5") == 0


def test_an_expired_redis_session_is_a_409_and_the_index_follows(alice, make_store, use_store) -> None:
    store = use_store(make_store("redis"))
    talk(alice, "s6", "one", "two")
    store.delete(session_key(Session.objects.get(tenant=alice.tenant, session_id="s6")))  # what its TTL does
    lost = alice.post("/run", {"agent": "echo", "message": "three", "session_id": "s6"})
    assert (lost.status_code, lost.json()["code"]) == (409, "session_expired")
    assert indexed(alice.tenant, "s6") == 0


def test_a_session_that_is_there_runs_as_always(alice) -> None:
    assert [r.json()["result"] for r in talk(alice, "s7", "a", "b")] == ["echo[turns=1]: a", "echo[turns=2]: b"]


# --- the console ------------------------------------------------------------------------------


def thread_list_count(client: Client, session: Session) -> str:
    page = client.get("/admin/sessions_app/thread/", {"q": session.session_id}).content.decode()
    row = page[page.index(f">{session.session_id}<") :]
    return row[row.index('class="field-messages">') + len('class="field-messages">') :].split("<", 1)[0]


def test_the_console_says_the_history_is_gone_and_its_counts_agree(alice, restart, admin_client) -> None:
    talk(alice, "s8", "one", "two", "three")
    session = Session.objects.get(tenant=alice.tenant, session_id="s8")
    assert thread_list_count(admin_client, session) == "6"
    restart()
    page = admin_client.get(f"/admin/sessions_app/thread/{session.thread_id}/change/").content.decode()
    assert 'id="history-lost"' in page and "(6 messages) is no longer in the session store" in page
    assert "0 messages · page 1 of 1" in page
    assert thread_list_count(admin_client, session) == "0"  # the list and the thread page agree
    again = admin_client.get(f"/admin/sessions_app/thread/{session.thread_id}/change/").content.decode()
    assert 'id="history-lost"' not in again  # said once: the index follows the store now


# --- the CLI ------------------------------------------------------------------------------------


def chat(*args: str, stdin: str, monkeypatch) -> str:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    out = io.StringIO()
    call_command("chat", *args, stdout=out)
    return out.getvalue()


def test_the_cli_on_its_own_store_refuses_a_session_it_cannot_see(alice, restart, monkeypatch) -> None:
    talk(alice, "s9", "one", "two")
    restart()  # a chat without the socket: its own, empty, in-memory store
    runs = Run.objects.count()
    with pytest.raises(CommandError, match="AK_SESSION__IN_MEMORY__SOCKET"):
        chat("--tenant", alice.tenant.slug, "--session", "s9", stdin="three\n", monkeypatch=monkeypatch)
    assert Run.objects.count() == runs  # nothing recorded on the server's session
    assert indexed(alice.tenant, "s9") == 4  # the server's index is not this process's to change
    out = chat("--tenant", alice.tenant.slug, stdin="hi\n", monkeypatch=monkeypatch)
    assert "this process's own" in out and "not shared with a server" in out  # said at the start


def test_the_cli_on_a_shared_store_says_the_history_is_gone_and_starts_over(
    alice, use_store, monkeypatch, tmp_path
) -> None:
    first = MemoryStoreServer(InMemoryStore(ttl=3600), tmp_path / "first.sock").start()
    use_store(SocketMemoryStore(socket=first.path))
    talk(alice, "s10", "one", "two")
    first.stop()
    second = MemoryStoreServer(InMemoryStore(ttl=3600), tmp_path / "second.sock").start()  # make run again
    try:
        use_store(SocketMemoryStore(socket=second.path))
        out = chat("--tenant", alice.tenant.slug, "--session", "s10", stdin="three\n", monkeypatch=monkeypatch)
    finally:
        second.stop()
    assert f"shared over {second.path}" in out
    assert "notice: the history of session 's10' (4 messages) is no longer in the session store" in out
    assert "echo> echo[turns=1]: three" in out
    assert indexed(alice.tenant, "s10") == 2


def test_the_cli_says_so_when_the_history_goes_during_the_chat(alice, use_store, make_store, monkeypatch) -> None:
    store = use_store(make_store("redis"))
    out_first = chat("--tenant", alice.tenant.slug, "--session", "s11", stdin="one\n", monkeypatch=monkeypatch)
    assert "store: redis" in out_first and "echo> echo[turns=1]: one" in out_first

    class Expiring(io.StringIO):
        """Lines typed by someone whose session expires in the store between two of them."""

        def readline(self, *args: object) -> str:
            line = super().readline(*args)
            if line == "two\n":
                store.delete(session_key(Session.objects.get(tenant=alice.tenant, session_id="s11")))
            return line

    monkeypatch.setattr(sys, "stdin", Expiring("two\n"))
    out = io.StringIO()
    call_command("chat", "--tenant", alice.tenant.slug, "--session", "s11", stdout=out)
    text = out.getvalue()
    assert "notice: the history of session 's11' (2 messages)" in text
    assert "echo> echo[turns=1]: two" in text  # sent again, on the emptied session
    assert indexed(alice.tenant, "s11") == 2
