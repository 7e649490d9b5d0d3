"""Polls that arrive together are read together (``runs_get``, ``GET /runs/<id>``).

Under a burst, hundreds of clients poll their runs; a process reads the runs of the polls that
arrive while its last read is under way in one SELECT, each run scoped to its tenant.
"""

from __future__ import annotations

import asyncio

import httpx
from django.core.handlers.asgi import ASGIHandler
from django.db import connection
from django.http import Http404
from django.test.utils import CaptureQueriesContext

from agents_app.api.serializers import RunOutput
from agents_app.selectors import run_get, runs_get
from agents_app.services import runs_record


def _runs(tenant, n: int) -> list:
    requests = [{"tenant": tenant, "agent_name": "echo", "message": f"m{i}", "request_hash": ""} for i in range(n)]
    return [outcome[0] for outcome in runs_record(requests)]


def test_many_runs_are_one_statement_each_scoped_to_its_tenant(make_tenant) -> None:
    a, b = make_tenant(), make_tenant()
    mine, theirs = _runs(a.tenant, 3), _runs(b.tenant, 1)
    keys = [(a.tenant, str(run.pk)) for run in mine]
    keys += [(a.tenant, str(theirs[0].pk)), (a.tenant, "not-a-uuid"), (b.tenant, str(theirs[0].pk)), keys[0]]
    with CaptureQueriesContext(connection) as queries:
        outcomes = runs_get(keys, fields=RunOutput.COLUMNS)
    assert len(queries) == 1
    assert [run.pk for run in outcomes[:3]] == [run.pk for run in mine]
    assert isinstance(outcomes[3], Http404) and isinstance(outcomes[4], Http404)  # another tenant's; no UUID
    assert outcomes[5].pk == theirs[0].pk and outcomes[6].pk == mine[0].pk
    assert outcomes[3] is not outcomes[4]  # each caller raises an exception of its own
    shown = RunOutput(outcomes[0]).data
    assert shown == RunOutput(run_get(tenant=a.tenant, run_id=str(mine[0].pk))).data
    assert (shown["agent"], shown["session_id"]) == ("echo", mine[0].session.session_id)


def test_polls_at_once_each_get_their_own_run(make_tenant) -> None:
    """Through the API, on a server's loop: concurrent polls of two tenants' runs, one unknown."""
    a, b = make_tenant(), make_tenant()
    runs = {"a": _runs(a.tenant, 4), "b": _runs(b.tenant, 4)}
    keys = {"a": a.key, "b": b.key}

    async def poll() -> list[tuple[str, int, dict]]:
        transport = httpx.ASGITransport(app=ASGIHandler())
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

            async def one(who: str, run_id: str) -> tuple[str, int, dict]:
                response = await client.get(f"/runs/{run_id}", headers={"Authorization": f"Bearer {keys[who]}"})
                return run_id, response.status_code, response.json()

            calls = [one(who, str(run.pk)) for who in ("a", "b") for run in runs[who]]
            calls.append(one("a", str(runs["b"][0].pk)))  # another tenant's run: not found
            return await asyncio.gather(*calls)

    answers = asyncio.run(poll())  # a loop of its own, as a server runs the app
    for run_id, code, body in answers[:-1]:
        assert code == 200 and body["run_id"] == run_id
    assert answers[-1][1] == 404
