"""Runs that arrive together are recorded together (``runs_record``, ``akplatform.together``).

A burst of requests in one process costs the database a few statements per group, not a handful
per run; the group is all or nothing, and what it cannot do together each request does alone.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.http import Http404
from django.test.utils import CaptureQueriesContext

from agents_app.models import Agent, Run
from agents_app.services import agent_get, queued_fields, run_sync, runs_record
from akplatform.together import Together
from sessions_app.models import Session, Thread


def _request(tenant, **extra) -> dict:
    return {"tenant": tenant, "agent_name": "echo", "message": "hi", "request_hash": "", **extra}


def test_a_group_is_a_few_statements_whatever_its_size(alice) -> None:
    counts = []
    for size in (2, 8):
        with CaptureQueriesContext(connection) as queries:
            outcomes = runs_record([_request(alice.tenant, session_id=f"s{size}-{i}") for i in range(size)])
        assert all(isinstance(outcome, tuple) and outcome[1] for outcome in outcomes)
        counts.append(len([q for q in queries if "agents_app_agent" not in q["sql"]]))  # each its agent, aside
    # Sessions looked up, the new ones counted against the tenant's limit, threads, sessions and
    # runs inserted: one statement each, in a transaction.
    assert counts[0] == counts[1] <= 7


def test_a_group_makes_each_session_once_and_keeps_the_ones_that_exist(alice) -> None:
    existing = runs_record([_request(alice.tenant, session_id="known")])[0][0].session
    threads = Thread.objects.count()
    requests = [
        _request(alice.tenant, session_id="known"),
        _request(alice.tenant, session_id="new"),
        _request(alice.tenant, session_id="new"),  # named twice: one session
        _request(alice.tenant),  # no id: a session of its own
        _request(alice.tenant),
    ]
    runs = [outcome[0] for outcome in runs_record(requests)]
    assert runs[0].session.pk == existing.pk
    assert runs[1].session.pk == runs[2].session.pk != existing.pk
    assert len({run.session.pk for run in runs[3:]}) == 2 and runs[3].session.session_id != runs[4].session.session_id
    assert Thread.objects.count() == threads + 3
    stored = {run.pk: run.session_id for run in Run.objects.filter(pk__in=[run.pk for run in runs])}
    assert stored == {run.pk: run.session.pk for run in runs}
    assert all(run.session.tenant == alice.tenant and run.tenant == alice.tenant for run in runs)


def test_tenants_in_one_group_never_share_a_session(make_tenant) -> None:
    a, b = make_tenant(), make_tenant()
    run_a, run_b = (
        outcome[0]
        for outcome in runs_record([_request(a.tenant, session_id="same"), _request(b.tenant, session_id="same")])
    )
    assert run_a.session.pk != run_b.session.pk
    assert Session.objects.get(pk=run_a.session.pk).tenant_id == a.tenant.pk
    assert Session.objects.get(pk=run_b.session.pk).tenant_id == b.tenant.pk
    assert (run_a.agent.tenant_id, run_b.agent.tenant_id) == (a.tenant.pk, b.tenant.pk)


def test_an_unknown_agent_fails_its_own_request_only(alice) -> None:
    outcomes = runs_record([_request(alice.tenant), _request(alice.tenant, agent_name="nope"), _request(alice.tenant)])
    assert isinstance(outcomes[1], Http404)
    assert all(Run.objects.filter(pk=outcome[0].pk).exists() for outcome in (outcomes[0], outcomes[2]))


def test_what_the_group_cannot_do_together_each_request_does_alone(alice) -> None:
    """An agent deleted by another process after this one looked it up: the group's transaction
    fails as a whole, and each request is recorded on its own (that one a 404)."""
    bot = Agent.objects.create(tenant=alice.tenant, name="bot", framework="echo", config={})
    agent_get(tenant=alice.tenant, name="bot")
    with connection.cursor() as cursor:  # as another process would: no signal here
        cursor.execute("DELETE FROM agents_app_agent WHERE id = %s", [bot.pk])
    runs = Run.objects.count()
    outcomes = runs_record([_request(alice.tenant, session_id="x"), _request(alice.tenant, agent_name="bot")])
    assert isinstance(outcomes[0], tuple) and isinstance(outcomes[1], Http404)
    assert Run.objects.count() == runs + 1 and outcomes[0][0].session.session_id == "x"


def test_requests_with_a_key_or_an_end_user_are_recorded_alone(alice) -> None:
    outcomes = runs_record(
        [
            _request(alice.tenant, idempotency_key="k1", request_hash="h"),
            _request(alice.tenant, idempotency_key="k1", request_hash="h"),  # the same request again
            _request(alice.tenant, user_id="u-1"),
            _request(alice.tenant),
        ]
    )
    assert outcomes[0][1] and outcomes[1] == (outcomes[0][0], False)
    assert outcomes[2][0].session.user.external_id == "u-1"
    assert outcomes[3][1]


def test_async_runs_of_a_group_are_queued(alice) -> None:
    outcomes = runs_record([_request(alice.tenant, **queued_fields()) for _ in range(3)])
    for run, created in outcomes:
        assert created and Run.objects.get(pk=run.pk).is_async


def test_requests_awaiting_together_are_recorded_in_one_call(alice) -> None:
    calls: list[int] = []

    def record(requests: list[dict]) -> list:
        calls.append(len(requests))
        return runs_record(requests)

    together = Together(record)

    async def burst() -> list:
        return await asyncio.gather(*(together(_request(alice.tenant, session_id=f"b{i}")) for i in range(5)))

    outcomes = async_to_sync(burst)()
    assert [created for _, created in outcomes] == [True] * 5
    assert calls == [5]  # all arrived before the first call: one call, one group
    assert {run.session.session_id for run, _ in outcomes} == {f"b{i}" for i in range(5)}


def test_together_keeps_each_outcome_to_its_caller(transactional_db: None) -> None:
    """The first item of a quiet loop goes alone; what arrives during a call goes in the next;
    each caller gets its own result or exception, also when the call fails as a whole."""
    started, release = threading.Event(), threading.Event()
    groups: list[list[int]] = []

    def many(items: list[int]) -> list:
        groups.append(items)
        if items == [0]:
            started.set()
            release.wait(5)
        if -1 in items:
            raise RuntimeError("the database is down")
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    together = Together(many)

    async def scenario() -> list:
        first = asyncio.ensure_future(together(0))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        later = [asyncio.ensure_future(together(i)) for i in (1, 2, 3)]
        await asyncio.sleep(0)
        release.set()
        outcomes = await asyncio.gather(first, *later, return_exceptions=True)
        failed = await asyncio.gather(together(-1), return_exceptions=True)
        return [*outcomes, *failed]

    outcomes = async_to_sync(scenario)()
    assert groups == [[0], [1, 2, 3], [-1]]
    assert outcomes[0] == 0 and outcomes[2] == 20
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "odd 1"
    assert isinstance(outcomes[3], ValueError) and str(outcomes[3]) == "odd 3"
    assert isinstance(outcomes[4], RuntimeError)


def test_together_calls_with_at_most_its_most(transactional_db: None) -> None:
    groups: list[list[int]] = []

    def many(items: list[int]) -> list[int]:
        groups.append(items)
        return [item * 2 for item in items]

    together = Together(many, most=2)

    async def burst() -> list[int]:
        return await asyncio.gather(*(together(i) for i in range(5)))

    assert async_to_sync(burst)() == [0, 2, 4, 6, 8]
    assert groups == [[0, 1], [2, 3], [4]]


@pytest.mark.parametrize("named", [True, False])
def test_the_api_answers_runs_that_arrive_together(alice, named: bool) -> None:
    """``runs_recorded`` as the API uses it: sync runs started together each answer with their own run."""

    async def burst() -> list:
        requests = [_request(alice.tenant, message=f"m{i}", session_id=f"api-{i}" if named else None) for i in range(4)]
        return await asyncio.gather(*(run_sync(**request) for request in requests))

    results = async_to_sync(burst)()
    assert [run.result for run, _ in results] == [f"echo[turns=1]: m{i}" for i in range(4)]
    assert len({run.session.pk for run, _ in results}) == 4
