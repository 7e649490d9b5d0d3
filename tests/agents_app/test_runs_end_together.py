"""Runs that end together are recorded together (``successes_record``, ``finish_together``,
``sessions_record_commits``).

A burst of runs ending in one process costs the database two statements per group, not two per
run; the runs' end is all or nothing, and what cannot end together ends alone, as before.
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents_app.models import Run
from agents_app.runs import transitions
from agents_app.runs.execute import Success, successes_record
from akplatform.together import Together
from sessions_app.models import Session
from sessions_app.services import session_open, sessions_record_commits

WORKER, OTHER = "w1@host:1", "w2@host:2"


@pytest.fixture
def running(alice):
    """``running(n)``: n runs ``running`` for WORKER, each on a session of its own (or ``session``)."""
    agent = alice.tenant.agents.get(name="echo")

    def make(n: int, *, session: Session | None = None, **fields) -> list[Run]:
        now = timezone.now()
        return [
            Run.objects.create(
                tenant=alice.tenant,
                session=session or session_open(tenant=alice.tenant, session_id=f"end-{i}-{now.timestamp()}"),
                agent=agent,
                message=f"m{i}",
                status="running",
                worker=WORKER,
                attempts=1,
                started_at=now,
                heartbeat_at=now,
                **fields,
            )
            for i in range(n)
        ]

    return make


def _endings(runs: list[Run], **usage) -> list[transitions.Ending]:
    return [transitions.Ending(run, WORKER, result=f"r{i}", usage=usage or None) for i, run in enumerate(runs)]


def test_runs_end_together_each_with_its_own_result_in_one_statement(running) -> None:
    counts = []
    for size in (2, 8):
        runs = running(size, error="an earlier attempt's")
        with CaptureQueriesContext(connection) as queries:
            assert transitions.finish_together(_endings(runs, tokens=3), status="succeeded")
        counts.append(len([q for q in queries if q["sql"].startswith("UPDATE")]))
        for i, run in enumerate(runs):
            stored = Run.objects.get(pk=run.pk)
            assert (stored.status, stored.result, stored.usage) == ("succeeded", f"r{i}", {"tokens": 3})
            assert stored.error is None and run.error is None  # as ``finish`` leaves it
            assert stored.finished_at is not None and stored.heartbeat_at is None
            assert (run.status, run.result, run.finished_at) == ("succeeded", f"r{i}", stored.finished_at)
    assert counts == [1, 1]


def test_a_run_without_usage_keeps_what_it_had(running) -> None:
    runs = running(2, usage={"before": 1})
    endings = [transitions.Ending(runs[0], WORKER, result="a"), transitions.Ending(runs[1], WORKER, usage={"n": 2})]
    assert transitions.finish_together(endings, status="succeeded")
    assert [Run.objects.get(pk=run.pk).usage for run in runs] == [{"before": 1}, {"n": 2}]
    assert Run.objects.get(pk=runs[1].pk).result is None


@pytest.mark.parametrize("taken", ["by another worker", "by the sweeper", "already ended"])
def test_when_one_run_is_not_held_none_ends_together(running, taken: str) -> None:
    runs = running(3)
    moved = Run.objects.filter(pk=runs[1].pk)
    if taken == "by another worker":
        moved.update(worker=OTHER)
    elif taken == "by the sweeper":
        moved.update(status="queued", worker="")
    else:
        moved.update(status="cancelled")
    before = {run.pk: Run.objects.get(pk=run.pk).status for run in runs}
    assert not transitions.finish_together(_endings(runs), status="succeeded")
    assert {run.pk: Run.objects.get(pk=run.pk).status for run in runs} == before  # nothing written
    assert all(run.status == "running" and run.finished_at is None for run in runs)  # nor shown


def test_only_an_end_and_only_runs_without_a_webhook(running) -> None:
    runs = running(2)
    with pytest.raises(ValueError, match="is not how a run ends"):
        transitions.finish_together(_endings(runs), status="running")
    hooked = running(1, webhook_url="https://example.com/hook")
    with pytest.raises(ValueError, match="webhook"):
        transitions.finish_together(_endings([*runs, *hooked]), status="succeeded")


def test_sessions_go_up_to_their_largest_commit_and_never_back(alice) -> None:
    a, b, c = (session_open(tenant=alice.tenant, session_id=name) for name in ("a", "b", "c"))
    Session.objects.filter(pk=c.pk).update(message_count=10)
    with CaptureQueriesContext(connection) as queries:
        sessions_record_commits(commits=[(a, 4), (b, 2), (a, 6), (c, 8)])
    assert len(queries) == 1
    counts = dict(Session.objects.filter(pk__in=[a.pk, b.pk, c.pk]).values_list("session_id", "message_count"))
    assert counts == {"a": 6, "b": 2, "c": 10}
    touched = dict(Session.objects.values_list("session_id", "last_activity_at"))
    assert touched["a"] == touched["b"] and touched["c"] != touched["a"]


def _successes(runs: list[Run], written: list) -> list[Success]:
    return [
        Success(transitions.Ending(run, WORKER, result=f"r{i}"), 2, lambda run=run: written.append(run.pk))
        for i, run in enumerate(runs)
    ]


def test_successes_are_two_statements_then_each_run_s_events(running) -> None:
    counts = []
    for size in (2, 8):
        runs, written = running(size), []
        with CaptureQueriesContext(connection) as queries:
            assert successes_record(_successes(runs, written)) == [None] * size
        counts.append(len([q for q in queries if q["sql"].startswith("UPDATE")]))
        assert written == [run.pk for run in runs]
        assert {Run.objects.get(pk=run.pk).status for run in runs} == {"succeeded"}
        assert {Session.objects.get(pk=run.session_id).message_count for run in runs} == {2}
    assert counts == [2, 2]


def test_what_cannot_end_together_ends_alone(running) -> None:
    """A run the sweeper gave to another worker meanwhile is not ended by this one, and the others
    are; a run with a webhook ends alone, its webhook queued."""
    runs = [*running(3), *running(1, webhook_url="https://example.com/hook")]
    Run.objects.filter(pk=runs[1].pk).update(worker=OTHER)
    written: list = []
    assert successes_record(_successes(runs, written)) == [None] * 4
    stored = {run.pk: Run.objects.get(pk=run.pk) for run in runs}
    assert [stored[run.pk].status for run in runs] == ["succeeded", "running", "succeeded", "succeeded"]
    assert stored[runs[3].pk].webhook_status == Run.Webhook.PENDING
    assert written == [run.pk for run in runs]  # its events were written, as a lost attempt's are


def test_runs_ending_at_once_are_recorded_in_one_call(running) -> None:
    runs, written = running(5), []
    calls: list[int] = []

    def record(items: list[Success]) -> list:
        calls.append(len(items))
        return successes_record(items)

    together = Together(record)  # as successes_recorded is made, counting its calls

    async def burst() -> list:
        return await asyncio.gather(*(together(success) for success in _successes(runs, written)))

    assert async_to_sync(burst)() == [None] * 5
    assert calls == [5] and sorted(written) == sorted(run.pk for run in runs)
    assert {Run.objects.get(pk=run.pk).status for run in runs} == {"succeeded"}
