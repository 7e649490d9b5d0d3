"""Many runs and polls at once: each request is answered with its own run, once, on its own
tenant's agent and session; what one request gets wrong fails that request only."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.core.handlers.asgi import ASGIHandler
from django.http import Http404

from agents_app.models import Run
from agents_app.runs.submit import RunRequest, run_record, run_submit
from agents_app.selectors import run_get
from sessions_app.models import Session, Thread
from sessions_app.services import session_open, session_record_commit


def _queued(tenant, **fields) -> Run:
    return run_record(RunRequest("echo", fields.pop("message", "hi"), mode="queued", **fields), tenant=tenant)[0]


@pytest.mark.parametrize("named", [True, False])
def test_sync_runs_at_once_each_answer_their_own_run(alice, named: bool) -> None:
    async def burst() -> list:
        requests = [RunRequest("echo", f"m{i}", session_id=f"api-{i}" if named else None) for i in range(6)]
        return await asyncio.gather(*(run_submit(request, tenant=alice.tenant) for request in requests))

    submitted = async_to_sync(burst)()
    assert [s.run.result for s in submitted] == [f"echo[turns=1]: m{i}" for i in range(6)]
    assert all(s.created for s in submitted) and len({s.run.session.pk for s in submitted}) == 6
    stored = Run.objects.filter(pk__in=[s.run.pk for s in submitted])
    assert {run.status for run in stored} == {"succeeded"} and stored.count() == 6


def test_runs_at_once_on_one_session_each_see_the_others(alice) -> None:
    """Serialized by the session's lock: no two runs see the same count of turns."""

    async def burst() -> list:
        requests = [RunRequest("echo", f"m{i}", session_id="shared") for i in range(5)]
        return await asyncio.gather(*(run_submit(request, tenant=alice.tenant) for request in requests))

    turns = sorted(s.run.result.split("]")[0] for s in async_to_sync(burst)())
    assert turns == [f"echo[turns={n}" for n in range(1, 6)]
    assert Thread.objects.filter(session__session_id="shared", tenant=alice.tenant).count() == 1


def test_a_session_named_again_is_the_same_and_a_new_one_is_each_its_own(alice) -> None:
    known = _queued(alice.tenant, session_id="known").session
    runs = [_queued(alice.tenant, session_id="known"), _queued(alice.tenant), _queued(alice.tenant)]
    assert runs[0].session.pk == known.pk
    assert len({run.session.pk for run in runs[1:]}) == 2 and known.pk not in {run.session.pk for run in runs[1:]}
    assert all(run.session.tenant == alice.tenant and run.tenant == alice.tenant for run in runs)
    assert all(Run.objects.get(pk=run.pk).is_async for run in runs)


def test_tenants_never_share_a_session(make_tenant) -> None:
    a, b = make_tenant(), make_tenant()
    run_a, run_b = _queued(a.tenant, session_id="same"), _queued(b.tenant, session_id="same")
    assert run_a.session.pk != run_b.session.pk
    assert Session.objects.get(pk=run_a.session.pk).tenant_id == a.tenant.pk
    assert Session.objects.get(pk=run_b.session.pk).tenant_id == b.tenant.pk
    assert (run_a.agent.tenant_id, run_b.agent.tenant_id) == (a.tenant.pk, b.tenant.pk)


def test_an_unknown_agent_fails_its_own_request_only(alice) -> None:
    async def burst() -> list:
        requests = [RunRequest("echo", "a"), RunRequest("nope", "b"), RunRequest("echo", "c")]
        return await asyncio.gather(*(run_submit(r, tenant=alice.tenant) for r in requests), return_exceptions=True)

    first, unknown, last = async_to_sync(burst)()
    assert isinstance(unknown, Http404)
    assert (first.run.result, last.run.result) == ("echo[turns=1]: a", "echo[turns=1]: c")


def test_a_key_sent_again_answers_the_first_run(alice) -> None:
    request = RunRequest("echo", "hi", mode="queued", idempotency_key="k1", request_hash="h")
    first, created = run_record(request, tenant=alice.tenant)
    again, created_again = run_record(request, tenant=alice.tenant)
    assert created and not created_again and again.pk == first.pk
    with_user = _queued(alice.tenant, user_id="u-1")
    assert with_user.session.user.external_id == "u-1"


def test_sessions_go_up_to_their_largest_commit_and_never_back(alice) -> None:
    a = session_open(tenant=alice.tenant, session_id="a")
    for total in (4, 6, 5):  # commits recorded out of order: the largest is the latest
        session_record_commit(session=a, total=total)
    assert Session.objects.get(pk=a.pk).message_count == 6


def test_many_polls_at_once_each_get_their_own_run(make_tenant) -> None:
    """Through the API, on a server's loop: concurrent polls of two tenants' runs, one of another
    tenant's (404), one not a run id (404)."""
    a, b = make_tenant(), make_tenant()
    runs = {"a": [_queued(a.tenant, message=f"m{i}") for i in range(4)]}
    runs["b"] = [_queued(b.tenant, message=f"m{i}") for i in range(4)]
    keys = {"a": a.key, "b": b.key}

    async def poll() -> list[tuple[str, int, dict]]:
        transport = httpx.ASGITransport(app=ASGIHandler())
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

            async def one(who: str, run_id: str) -> tuple[str, int, dict]:
                response = await client.get(f"/runs/{run_id}", headers={"Authorization": f"Bearer {keys[who]}"})
                return run_id, response.status_code, response.json()

            calls = [one(who, str(run.pk)) for who in ("a", "b") for run in runs[who]]
            calls += [one("a", str(runs["b"][0].pk)), one("a", "not-a-uuid")]
            return await asyncio.gather(*calls)

    answers = asyncio.run(poll())  # a loop of its own, as a server runs the app
    for (run_id, code, body), run in zip(answers[:-2], [*runs["a"], *runs["b"]], strict=True):
        assert code == 200 and body["run_id"] == run_id
        assert (body["agent"], body["session_id"], body["status"]) == ("echo", run.session.session_id, "queued")
    assert [code for _, code, _ in answers[-2:]] == [404, 404]
    with pytest.raises(Http404):
        run_get(tenant=a.tenant, run_id=str(runs["b"][0].pk))
