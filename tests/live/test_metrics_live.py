"""``/metrics`` of a live platform: gunicorn (2 processes) and a Celery worker sharing one
``PROMETHEUS_MULTIPROC_DIR``, scraped through gunicorn; and their logs, as JSON lines."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.live.queue import Queue

pytestmark = pytest.mark.slow

TOKEN = "live-metrics-token-0123456789abcdef0123"
SYNC_RUNS, ASYNC_RUNS = 6, 4


def scrape(queue: Queue) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = requests.get(f"{queue.platform.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def json_lines(log: Path) -> list[dict]:
    """The log's JSON lines (a Celery worker prints its banner as text before it logs)."""
    return [json.loads(line) for line in log.read_text(errors="replace").splitlines() if line.startswith("{")]


def test_metrics_add_up_the_web_processes_and_the_worker(start_queue, tmp_path: Path) -> None:
    queue: Queue = start_queue(
        "redis",
        workers=1,
        env={
            "AK_METRICS__TOKEN": TOKEN,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "AK_LOG_FORMAT": "json",
        },
    )
    sync_agent, async_agent = queue.agent("in-web"), queue.agent("in-worker")
    tag = uuid.uuid4().hex[:6]

    sync_runs = {}
    for i in range(SYNC_RUNS):
        request_id = f"req-{tag}-{i}"
        body = {"agent": sync_agent, "message": f"sync {i}", "session_id": f"s-{tag}-{i}"}
        answer = queue.post("/run", body, **{"X-Request-ID": request_id})
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Request-ID"] == request_id
        sync_runs[answer.json()["run_id"]] = request_id
    queued = [queue.enqueue(async_agent, f"async {i}", f"a-{tag}-{i}") for i in range(ASYNC_RUNS)]
    async_runs = [queue.finished(q["run_id"]) for q in queued]
    assert [r["status"] for r in async_runs] == ["succeeded"] * ASYNC_RUNS
    workers = queue.worker_of(*sync_runs, *(r["run_id"] for r in async_runs))
    assert all(workers[run_id].startswith("web@") for run_id in sync_runs)  # done in gunicorn
    assert all(not workers[r["run_id"]].startswith("web@") for r in async_runs)  # done by the Celery worker

    assert requests.get(f"{queue.platform.url}/metrics", timeout=30).status_code == 401
    for _ in range(4):  # whichever web process answers, it adds up every process's files
        samples = scrape(queue)
        runs = {
            dict(labels)["framework"]: value
            for (name, labels), value in samples.items()
            if name == "ak_runs_total" and dict(labels)["status"] == "succeeded"
        }
        assert runs == {"counting": SYNC_RUNS + ASYNC_RUNS}  # by framework: never a name a tenant chose
        duration = samples[("ak_run_duration_seconds_count", frozenset({("status", "succeeded")}))]
        assert duration == SYNC_RUNS + ASYNC_RUNS
        assert samples[("ak_run_queue_wait_seconds_count", frozenset())] == ASYNC_RUNS
        assert samples[("ak_runs_in_flight", frozenset())] == 0
        assert samples[("ak_http_requests_total", frozenset({("method", "POST"), ("status", "200")}))] == SYNC_RUNS
    assert any(path.name.startswith("counter_") for path in (tmp_path / "metrics").iterdir())

    web = json_lines(queue.tmp / "gunicorn.log")
    assert web, "gunicorn logged no JSON line"
    ends = {line["run_id"]: line for line in web if line["logger"] == "agents_app.runs.transitions"}
    for run_id, request_id in sync_runs.items():
        assert ends[run_id]["request_id"] == request_id
        assert ends[run_id]["tenant"] == queue.platform.tenant
        assert "succeeded" in ends[run_id]["message"]
    worker_log = next(queue.tmp / f"{name}.log" for name in queue.workers)
    done = {line["run_id"]: line for line in json_lines(worker_log) if line.get("run_id")}
    for run in async_runs:
        assert done[run["run_id"]]["tenant"] == queue.platform.tenant
    text = [line for line in (queue.tmp / "gunicorn.log").read_text().splitlines() if not line.startswith("{")]
    assert text == []  # gunicorn's and uvicorn's own lines are JSON too
