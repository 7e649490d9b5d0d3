"""A stream waits on the store's events, the run's end among them: not on its run's row.

The transitions that end a run outside the process executing it write its end to its log; the
row is read only when a stream opens and every ``AK_RUN__STREAM_CHECK`` seconds (``runs.ends``)."""

from __future__ import annotations

import asyncio

from agents_app.models import Run
from agents_app.runs.cancel import run_cancel
from agents_app.runs.submit import RunRequest, run_record
from agents_app.selectors import run_events
from infra.io_threads import db
from sessions_app.selectors import session_key
from sessions_app.stores import get_store


def enqueued(tenant, django_capture_on_commit_callbacks) -> Run:
    with django_capture_on_commit_callbacks(execute=False):  # never published: nobody executes it
        run, _ = run_record(RunRequest("echo", "waits", mode="queued"), tenant=tenant)
    return Run.objects.select_related("session").get(pk=run.pk)


async def follow(run: Run, tenant) -> list[tuple[int, str, dict]]:
    events = await run_events(run=run, tenant=tenant)
    return [(e.id, e.kind, e.data) for e in [e async for e in events] if e is not None]


def test_a_queued_run_cancelled_while_followed_ends_its_streams_from_the_log(
    alice, settings, django_capture_on_commit_callbacks
) -> None:
    settings.AK_RUN = {**settings.AK_RUN, "STREAM_CHECK": 3600.0}  # the row's check never comes
    run = enqueued(alice.tenant, django_capture_on_commit_callbacks)

    async def scenario() -> list[list]:
        streams = [asyncio.create_task(follow(run, alice.tenant)) for _ in range(3)]
        await asyncio.sleep(0.3)  # they wait on the store
        assert not any(stream.done() for stream in streams)
        await db(run_cancel, run=run)
        return await asyncio.gather(*streams)

    for events in asyncio.run(scenario()):
        assert events == [(1, "cancelled", {"code": "run_cancelled", "detail": "cancelled before it started"})]
    logged = get_store().read_events(session_key(run.session), str(run.pk))
    assert [(e.id, e.kind) for e in logged] == [(1, "cancelled")]  # the end is in the log, not only on the row


def test_an_end_missing_from_the_log_is_found_by_each_stream_s_check(
    alice, settings, django_capture_on_commit_callbacks
) -> None:
    """The row says the run ended but its log never got the event (the store failed then): the
    streams end with the row's end, found by their checks of the row."""
    settings.AK_RUN = {**settings.AK_RUN, "STREAM_CHECK": 0.3}
    runs = [enqueued(alice.tenant, django_capture_on_commit_callbacks) for _ in range(3)]

    async def scenario() -> list[list]:
        streams = [asyncio.create_task(follow(run, alice.tenant)) for run in runs]
        await asyncio.sleep(0.1)
        assert not any(stream.done() for stream in streams)
        ids = [run.pk for run in runs]
        await db(lambda: Run.objects.filter(pk__in=ids).update(status=Run.Status.FAILED, error="lost"))
        return await asyncio.gather(*streams)

    for events in asyncio.run(scenario()):
        assert events == [(1, "error", {"code": "run_failed", "detail": "lost"})]
