"""``GET /metrics``: Prometheus's text format, behind a bearer token; the runs counted as they end.

In process the metrics are this process's (no ``PROMETHEUS_MULTIPROC_DIR``); the same through
gunicorn and a worker, added up over their processes, is ``tests/live/test_metrics_live.py``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from agents_app.models import Agent, Run
from agents_app.runs.execute import run_execute
from agents_app.runs.submit import RunRequest, run_record, run_submit
from agents_app.services import agent_create
from tests.services import ROOT

TOKEN = "metrics-token-0123456789abcdef0123456789"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(autouse=True)
def _token(settings) -> None:
    settings.AK_METRICS = {**settings.AK_METRICS, "TOKEN": TOKEN}


def scrape(client: Client | None = None) -> Samples:
    response = (client or Client()).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    samples: Samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_metrics_are_a_404_while_no_token_is_set(settings) -> None:
    settings.AK_METRICS = {**settings.AK_METRICS, "TOKEN": None}
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404


@pytest.mark.parametrize("authorization", [None, "Bearer nope", f"Bearer {TOKEN}x", TOKEN, f"Basic {TOKEN}"])
def test_metrics_without_the_token_are_a_401(authorization: str | None) -> None:
    extra = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = Client().get("/metrics", **extra)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"ak_runs" not in response.content


def test_metrics_with_the_token_are_prometheus_text() -> None:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert {"ak_runs", "ak_run_duration_seconds", "ak_run_queue_wait_seconds", "ak_runs_in_flight"} <= names
    assert {"ak_store_errors", "ak_adapter_errors", "ak_http_requests"} <= names
    assert Client().post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_openmetrics_when_prometheus_asks_for_it() -> None:
    response = Client().get(
        "/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0"
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.rstrip().endswith(b"# EOF")


def test_runs_are_counted_by_status_and_framework(alice, settings) -> None:
    fast, slow = unique("fast"), unique("slow")
    agent_create(tenant=alice.tenant, name=fast, framework="echo", config={})
    agent_create(tenant=alice.tenant, name=slow, framework="echo", config={"delay_s": 5})
    before = scrape()
    for message in ("one", "two"):
        assert alice.post("/run", {"agent": fast, "message": message}).status_code == 200
    settings.AK_RUN = {**settings.AK_RUN, "TIME_LIMIT": 0.2}
    assert alice.post("/run", {"agent": slow, "message": "too slow"}).status_code == 504
    after = scrape()

    for status, runs in (("succeeded", 2), ("failed", 1), ("cancelled", 0)):
        total = value(after, "ak_runs_total", status=status, framework="echo")
        assert total - value(before, "ak_runs_total", status=status, framework="echo") == runs
    for status, runs in (("succeeded", 2), ("failed", 1)):
        count = "ak_run_duration_seconds_count"
        assert value(after, count, status=status) - value(before, count, status=status) == runs
    slow_sum = value(after, "ak_run_duration_seconds_sum", status="failed")
    assert slow_sum - value(before, "ak_run_duration_seconds_sum", status="failed") >= 0.2  # it ran to its limit
    answered = value(after, "ak_http_requests_total", method="POST", status="200")
    assert answered - value(before, "ak_http_requests_total", method="POST", status="200") == 2
    assert value(after, "ak_http_requests_total", method="POST", status="504") >= 1


def test_the_runs_series_stay_few_whatever_tenants_name_their_agents(alice) -> None:
    """50 agents of one framework, each run once: one more series at most, not 50; no label
    carries a name a tenant chose."""
    names = [unique("named-by-a-tenant") for _ in range(50)]
    for name in names:
        agent_create(tenant=alice.tenant, name=name, framework="echo", config={})
        assert alice.post("/run", {"agent": name, "message": "hi"}).status_code == 200
    runs = {labels for name, labels in scrape() if name == "ak_runs_total"}
    assert all({key for key, _ in labels} == {"status", "framework"} for labels in runs), runs
    assert len(runs) <= 3 * len(django_settings.AK_FRAMEWORKS)  # succeeded, failed, cancelled per framework
    assert not any(agent in value for labels in runs for _, value in labels for agent in names)


def test_an_async_run_shows_its_wait_in_the_queue(alice, django_capture_on_commit_callbacks) -> None:
    agent = unique("queued")
    agent_create(tenant=alice.tenant, name=agent, framework="echo", config={})
    before = scrape()
    with django_capture_on_commit_callbacks(execute=False):  # not published: this test is the worker
        run, _ = run_record(RunRequest(agent, "later", mode="queued"), tenant=alice.tenant)
    # Requested 30 s ago, handed to the broker now (as a run held for its tenant's turn is): it waited 30 s.
    Run.objects.filter(pk=run.pk).update(created_at=run.created_at - timedelta(seconds=30))
    asyncio.run(run_execute(run_id=str(run.pk), worker="test-worker:1"))
    after = scrape()
    waits = "ak_run_queue_wait_seconds_count"
    assert value(after, waits) - value(before, waits) == 1
    waited = "ak_run_queue_wait_seconds_sum"
    assert value(after, waited) - value(before, waited) >= 30
    succeeded = value(after, "ak_runs_total", status="succeeded", framework="echo")
    assert succeeded - value(before, "ak_runs_total", status="succeeded", framework="echo") == 1


def test_a_run_counts_in_flight_while_it_executes(alice) -> None:
    agent = unique("slowish")
    agent_create(tenant=alice.tenant, name=agent, framework="echo", config={"delay_s": 0.5})

    def in_flight() -> float:
        return REGISTRY.get_sample_value("ak_runs_in_flight") or 0.0

    async def one_run() -> tuple[float, float, float]:
        before = in_flight()
        task = (await run_submit(RunRequest(agent, "x", mode="stream"), tenant=alice.tenant)).task
        await asyncio.sleep(0.2)
        during = in_flight()
        await task  # type: ignore[misc] - a streamed run has its task
        return before, during, in_flight()

    before, during, after = asyncio.run(one_run())
    assert during == before + 1
    assert after == before


def test_an_adapters_failure_is_counted_by_framework(alice, model_server) -> None:
    config = {"base_url": model_server.url, "model": "m1", "api_key": {"secret": "nope"}}
    # A secret it does not have (the API refuses such an agent; made so, it fails its runs).
    Agent.objects.create(tenant=alice.tenant, name="gpt", framework="openai_chat", config=config)
    before = scrape()
    assert alice.post("/run", {"agent": "gpt", "message": "hi"}).status_code == 502
    after = scrape()
    errors = "ak_adapter_errors_total"
    assert value(after, errors, framework="openai_chat") - value(before, errors, framework="openai_chat") == 1
    assert value(after, errors, framework="echo") == value(before, errors, framework="echo")


def test_a_store_error_is_counted_by_class(alice, make_store, use_store) -> None:
    from tests.services import free_port

    use_store(make_store("redis", url=f"redis://127.0.0.1:{free_port()}/0"))  # nothing answers there
    before = scrape()
    response = alice.post("/run", {"agent": "echo", "message": "x"})
    assert response.status_code == 503
    after = scrape()
    errors = "ak_store_errors_total"
    # Twice: the run's start (it failed), then the write of its last events.
    assert value(after, errors, error="StoreUnavailable") - value(before, errors, error="StoreUnavailable") == 2
    assert value(after, "ak_runs_total", status="failed", framework="echo") >= 1


def test_a_short_token_stops_start_up_without_showing_it() -> None:
    short = "short-metrics-token"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "akplatform.settings", "AK_METRICS__TOKEN": short},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "AK_METRICS__TOKEN" in result.stderr
    assert short not in result.stderr


def test_a_starting_process_drops_the_live_gauges_of_dead_processes(tmp_path) -> None:
    from infra.metrics import forget_dead_processes

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    dead, alive = int(gone.stdout), os.getppid()
    for name in (f"gauge_livesum_{dead}.db", f"gauge_livesum_{alive}.db", f"counter_{dead}.db"):
        (tmp_path / name).write_bytes(b"")
    forget_dead_processes(str(tmp_path))
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"counter_{dead}.db", f"gauge_livesum_{alive}.db"]
