"""``Runner.execute`` and ``Runner.execute_resume`` over each store: a pause is committed with its
session's marker, refuses other runs until its resume commits, and is replayed as a pause."""

from __future__ import annotations

import asyncio

import pytest

from agents_app.errors import SessionPaused
from agents_app.frameworks import AgentSpec
from agents_app.frameworks.base import Decision, Pause, Resume
from agents_app.pauses import PAUSE_SCOPE, pause_forget, pause_marker
from agents_app.runner import Runner

APPROVER = AgentSpec("approver", "echo", {"approval": True})
ECHO = AgentSpec("echo", "echo")
APPROVED = Resume(decisions={"echo": Decision(approve=True)})


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_pause_is_committed_and_waits_for_its_resume(store, key) -> None:
    runner = Runner(store=store)
    paused = run(runner.execute(APPROVER, key, "hi", run_id="r1"))
    assert paused.pause == Pause("approval", requests=paused.pause.requests)
    assert paused.pause.as_dict()["requests"] == [{"id": "echo", "tool": "echo", "arguments": {"message": "hi"}}]
    assert paused.reply == "" and paused.commit.total == 1
    marker = pause_marker(store.load(key, scopes=(PAUSE_SCOPE,), window=0))
    assert marker == {"run_id": "r1", "commit_id": "r1", "pause": paused.pause.as_dict()}
    with pytest.raises(SessionPaused) as refused:
        run(runner.execute(ECHO, key, "other", run_id="r2"))
    assert refused.value.run_id == "r1"
    resumed = run(runner.execute_resume(APPROVER, key, paused.pause, APPROVED, run_id="r1", commit_id="r1.1"))
    assert (resumed.reply, resumed.pause) == ("echo[turns=1]: hi", None)
    assert pause_marker(store.load(key, scopes=(PAUSE_SCOPE,), window=0)) is None
    assert run(runner.execute(ECHO, key, "other", run_id="r2")).reply == "echo[turns=2]: other"
    assert [m.content for m in store.history(key)] == ["hi", "echo[turns=1]: hi", "other", "echo[turns=2]: other"]


def test_a_committed_pause_and_a_committed_resume_are_replayed_not_redone(store, key) -> None:
    runner = Runner(store=store)
    paused = run(runner.execute(APPROVER, key, "hi", run_id="r1"))
    again = run(runner.execute(APPROVER, key, "hi", run_id="r1"))  # its process died after the commit
    assert (again.replayed, again.pause) == (True, paused.pause)
    first = run(runner.execute_resume(APPROVER, key, paused.pause, APPROVED, run_id="r1", commit_id="r1.1"))
    replayed = run(runner.execute_resume(APPROVER, key, paused.pause, APPROVED, run_id="r1", commit_id="r1.1"))
    assert (replayed.replayed, replayed.reply) == (True, first.reply)
    assert [m.content for m in store.history(key)] == ["hi", "echo[turns=1]: hi"]


def test_a_stale_marker_is_cleared_by_the_next_run(store, key) -> None:
    runner = Runner(store=store)
    run(runner.execute(APPROVER, key, "hi", run_id="r1"))

    async def ended(run_id: str) -> bool:
        return False  # r1 ended (cancelled) but its marker stayed

    outcome = run(runner.execute(ECHO, key, "next", run_id="r2", paused_elsewhere=ended))
    assert outcome.reply == "echo[turns=2]: next"
    assert pause_marker(store.load(key, scopes=(PAUSE_SCOPE,), window=0)) is None


def test_pause_forget_clears_only_the_named_runs_marker(store, key) -> None:
    runner = Runner(store=store)
    run(runner.execute(APPROVER, key, "hi", run_id="r1"))
    assert not pause_forget(store, key, "other")
    assert pause_forget(store, key, "r1")
    assert pause_marker(store.load(key, scopes=(PAUSE_SCOPE,), window=0)) is None
    assert run(runner.execute(ECHO, key, "x", run_id="r2")).reply == "echo[turns=2]: x"


def test_the_python_api_says_a_pause_needs_execute(store, key) -> None:
    from sessions_app.core import Session

    with pytest.raises(RuntimeError, match="execute_resume"):
        run(Runner(store=store).run(APPROVER, Session(key.session_id, tenant=key.tenant, store=store), "hi"))
