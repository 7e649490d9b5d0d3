"""The run lifecycle in process: claims, replays, busy sessions, cancels, the sweeper, idempotency.

Runs execute as the worker's task does (``runs.execute.run_execute`` on an event loop, its
database calls in the I/O threads), so the tests use a transactional database.

Runs are published to the embedded (filesystem) broker and executed by calling the worker's
service directly, so each state change can be checked in between; the live tests do the same
through real worker processes.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from agents_app.models import Run
from agents_app.runs import execute
from agents_app.runs.cancel import run_cancel
from agents_app.runs.execute import Step
from agents_app.runs.submit import RunRequest, run_record
from agents_app.runs.sweep import run_sweep
from agents_app.services import agent_create
from agents_app.webhooks import webhook_sign, webhook_verify
from sessions_app.selectors import session_key
from sessions_app.stores import get_store

WORKER = "w-test@host"


def run_execute(*, run_id: str, worker: str) -> Step:
    """What the worker's task does with a run, on an event loop of its own."""
    return asyncio.run(execute.run_execute(run_id=run_id, worker=worker))


@pytest.fixture
def queued(alice, django_capture_on_commit_callbacks):
    """``queued(message, session_id=..., agent=...)``: an async run, published once committed."""

    def make(message: str = "hi", *, session_id: str = "s-1", agent: str = "echo") -> Run:
        with django_capture_on_commit_callbacks(execute=True):
            run, created = run_record(
                RunRequest(agent, message, session_id=session_id, mode="queued"), tenant=alice.tenant
            )
        assert created
        run.refresh_from_db()
        assert run.enqueued_at is not None  # handed to the broker after the row was committed
        return run

    return make


def history(run: Run) -> list[str]:
    return [m.content for m in get_store().history(session_key(run.session))]


def test_a_worker_runs_a_queued_run_once(queued) -> None:
    run = queued("hello")
    assert (run.status, run.attempts, run.is_async) == ("queued", 0, True)
    assert run_execute(run_id=str(run.pk), worker=WORKER) is Step.DONE
    run.refresh_from_db()
    assert (run.status, run.result, run.worker, run.attempts) == ("succeeded", "echo[turns=1]: hello", WORKER, 1)
    assert run.started_at <= run.finished_at and run.heartbeat_at is None
    assert run_execute(run_id=str(run.pk), worker="another@host") is Step.SKIPPED  # a duplicate delivery
    assert history(run) == ["hello", "echo[turns=1]: hello"]
    assert run.session.__class__.objects.get(pk=run.session.pk).message_count == 2


def test_a_run_that_committed_before_its_worker_died_is_replayed_not_rerun(queued) -> None:
    run = queued("once")
    run_execute(run_id=str(run.pk), worker=WORKER)
    # The worker died after the store commit, before it recorded the outcome.
    stale = timezone.now() - timedelta(minutes=5)
    Run.objects.filter(pk=run.pk).update(status="running", result=None, finished_at=None, heartbeat_at=stale)
    assert run_sweep().requeued == 1
    assert Run.objects.get(pk=run.pk).status == "queued"
    assert run_execute(run_id=str(run.pk), worker="w2@host") is Step.DONE
    run.refresh_from_db()
    assert (run.status, run.result, run.attempts, run.worker) == ("succeeded", "echo[turns=1]: once", 2, "w2@host")
    assert run.started_at is not None
    assert history(run) == ["once", "echo[turns=1]: once"]  # committed once


def test_a_busy_session_sends_the_run_back_without_counting_an_attempt(queued) -> None:
    run = queued("wait")
    with get_store().lock(session_key(run.session), lease=10, wait=0):
        assert run_execute(run_id=str(run.pk), worker=WORKER) is Step.BUSY
    run.refresh_from_db()
    assert (run.status, run.attempts, run.started_at, run.worker) == ("queued", 0, None, "")
    assert run_execute(run_id=str(run.pk), worker=WORKER) is Step.DONE


def test_a_cancelled_queued_run_never_starts(queued) -> None:
    run = queued("never")
    assert run_cancel(run=run).status == "cancelled"
    assert run_execute(run_id=str(run.pk), worker=WORKER) is Step.SKIPPED
    run.refresh_from_db()
    assert (run.status, run.started_at, run.result) == ("cancelled", None, None)
    assert history(run) == []


def test_cancel_leaves_a_finished_run_as_it_was(queued) -> None:
    run = queued("done")
    run_execute(run_id=str(run.pk), worker=WORKER)
    assert run_cancel(run=Run.objects.get(pk=run.pk)).status == "succeeded"


def test_a_cancel_that_meets_a_busy_session_cancels(queued) -> None:
    run = queued("racing")
    with get_store().lock(session_key(run.session), lease=10, wait=0):
        Run.objects.filter(pk=run.pk).update(cancel_requested_at=timezone.now())  # arrived mid-claim
        assert run_execute(run_id=str(run.pk), worker=WORKER) is Step.DONE  # the worker ends it, unstarted
    run.refresh_from_db()
    assert (run.status, run.error, run.attempts) == ("cancelled", "cancelled before it started", 0)
    assert run_cancel(run=run).status == "cancelled"
    assert history(run) == []


def test_the_sweeper_fails_runs_past_their_attempts_or_time(queued, settings) -> None:
    stale = timezone.now() - timedelta(minutes=5)
    worn = queued("worn", session_id="a")
    Run.objects.filter(pk=worn.pk).update(
        status="running", attempts=settings.AK_RUN["MAX_ATTEMPTS"], heartbeat_at=stale
    )
    ancient = queued("ancient", session_id="b")
    long_ago = timezone.now() - timedelta(seconds=settings.AK_RUN["TIME_LIMIT"] + 120)
    Run.objects.filter(pk=ancient.pk).update(status="running", attempts=1, heartbeat_at=stale, started_at=long_ago)
    asked = queued("asked", session_id="c")
    Run.objects.filter(pk=asked.pk).update(status="running", heartbeat_at=stale, cancel_requested_at=stale)
    fresh = queued("fresh", session_id="d")
    Run.objects.filter(pk=fresh.pk).update(status="running", heartbeat_at=timezone.now())
    Run.objects.filter(pk__in=[worn.pk, ancient.pk, asked.pk, fresh.pk]).update(is_async=True)
    report = run_sweep()
    assert (report.requeued, report.failed) == (0, 3)
    outcome = {r.message: (r.status, (r.error or "").split(":")[0]) for r in Run.objects.all()}
    assert outcome == {
        "worn": ("failed", "its process was lost 3 times"),
        "ancient": ("failed", "timeout"),
        "asked": ("cancelled", "cancelled; its process was lost"),
        "fresh": ("running", ""),
    }


def test_the_sweeper_republishes_forgotten_queued_runs(queued, settings) -> None:
    run = queued("forgotten")
    long_ago = timezone.now() - timedelta(seconds=settings.AK_RUN["REQUEUE_AFTER"] + 1)
    Run.objects.filter(pk=run.pk).update(enqueued_at=long_ago)
    assert run_sweep().republished == 1
    assert Run.objects.get(pk=run.pk).enqueued_at > long_ago


def test_a_sync_run_over_the_time_limit_is_a_504_and_commits_nothing(alice, settings) -> None:
    settings.AK_RUN = {**settings.AK_RUN, "TIME_LIMIT": 0.3}
    agent_create(tenant=alice.tenant, name="slow", framework="echo", config={"delay_s": 5})
    started = time.monotonic()
    response = alice.post("/run", {"agent": "slow", "message": "late", "session_id": "tl"})
    assert response.status_code == 504 and response.json()["code"] == "run_timeout"
    assert time.monotonic() - started < 3
    run = Run.objects.get(session__session_id="tl")
    assert (run.status, run.error.startswith("timeout")) == ("failed", True)
    assert get_store().history(session_key(run.session)) == []


def test_idempotency_key_on_sync_runs(alice) -> None:
    body = {"agent": "echo", "message": "pay once", "session_id": "idem"}
    first = alice.post("/run", body, HTTP_IDEMPOTENCY_KEY="k-1")
    again = alice.post("/run", body, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert Run.objects.filter(tenant=alice.tenant).count() == 1
    other = alice.post("/run", {**body, "message": "pay twice"}, HTTP_IDEMPOTENCY_KEY="k-1")
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    bad = alice.post("/run", body, HTTP_IDEMPOTENCY_KEY="has space")
    assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["fields"]
    assert len(get_store().history(session_key(Run.objects.get().session))) == 2


def test_idempotency_keys_are_per_tenant(alice, make_tenant) -> None:
    bob = make_tenant()
    body = {"agent": "echo", "message": "same key", "session_id": "s"}
    a = alice.post("/run", body, HTTP_IDEMPOTENCY_KEY="shared").json()
    b = bob.post("/run", body, HTTP_IDEMPOTENCY_KEY="shared").json()
    assert a["run_id"] != b["run_id"]


def test_webhook_signatures() -> None:
    now = str(int(time.time()))
    signature = webhook_sign(secret="s3cret", timestamp=now, body=b'{"a":1}')
    assert webhook_verify(secret="s3cret", timestamp=now, body=b'{"a":1}', signature=signature)
    assert not webhook_verify(secret="s3cret", timestamp=now, body=b'{"a":2}', signature=signature)
    assert not webhook_verify(secret="other", timestamp=now, body=b'{"a":1}', signature=signature)
    old = str(int(time.time()) - 3600)
    old_signature = webhook_sign(secret="s3cret", timestamp=old, body=b"{}")
    assert not webhook_verify(secret="s3cret", timestamp=old, body=b"{}", signature=old_signature)


def test_each_tenant_has_its_own_webhook_secret(make_tenant) -> None:
    assert make_tenant().tenant.webhook_secret != make_tenant().tenant.webhook_secret


@pytest.fixture
def dead_store(make_store, use_store):
    """The process-wide store is a Redis that does not answer."""
    from tests.services import free_port

    return use_store(make_store("redis", url=f"redis://127.0.0.1:{free_port()}/0"))


def test_a_store_outage_sends_the_run_back_to_the_queue(queued, dead_store) -> None:
    run = queued("later")
    assert run_execute(run_id=str(run.pk), worker=WORKER) is Step.UNAVAILABLE
    run.refresh_from_db()
    assert (run.status, run.attempts, run.worker, run.error) == ("queued", 0, "", None)


def test_the_task_retries_an_outage_with_backoff_then_gives_up(queued, dead_store, settings) -> None:
    from agents_app.tasks import execute_run

    run = queued("doomed")
    before = Run.objects.get(pk=run.pk).enqueued_at
    assert execute_run(str(run.pk), unavailable=0) == "unavailable"
    again = Run.objects.get(pk=run.pk)
    assert again.status == "queued" and again.enqueued_at > before  # published again, with a delay
    assert execute_run(str(run.pk), unavailable=settings.AK_RUN["UNAVAILABLE_RETRIES"]) == "unavailable"
    final = Run.objects.get(pk=run.pk)
    assert (final.status, final.error) == ("failed", "the session store stayed unavailable")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "http://10.1.2.3/hook", "http://169.254.169.254/latest", "http://[::1]/x"]
)
def test_webhooks_to_the_platforms_own_network_are_refused(alice, settings, url: str) -> None:
    settings.AK_RUN = {**settings.AK_RUN, "WEBHOOK_ALLOW_PRIVATE": False}
    response = alice.post("/run", {"agent": "echo", "message": "x", "async": True, "webhook": url})
    assert response.status_code == 400 and "non-public address" in str(response.json()["fields"]["webhook"])
    assert not Run.objects.exists()


def test_a_webhook_whose_host_moved_to_a_private_address_is_not_called(queued, settings) -> None:
    from agents_app.webhooks import webhook_deliver

    run = queued("hook")
    Run.objects.filter(pk=run.pk).update(webhook_url="http://127.0.0.1:9/hook", status="succeeded")
    settings.AK_RUN = {**settings.AK_RUN, "WEBHOOK_ALLOW_PRIVATE": False}
    assert webhook_deliver(run_id=str(run.pk)).status == "refused"
    run.refresh_from_db()
    assert (run.webhook_status, run.webhook_attempts) == ("failed", 0)


def test_a_cancel_while_the_store_is_down(alice, queued, make_store, use_store) -> None:
    """The database alone cancels a queued run: no worker has it, so nothing can commit it."""
    from tests.services import free_port

    run = queued("halted")
    use_store(make_store("redis", url=f"redis://127.0.0.1:{free_port()}/0"))  # down
    response = alice.post(f"/runs/{run.pk}/cancel")
    run.refresh_from_db()
    assert response.status_code == 200 and response.json()["status"] == run.status == "cancelled"
    assert run_execute(run_id=str(run.pk), worker=WORKER) is Step.SKIPPED
