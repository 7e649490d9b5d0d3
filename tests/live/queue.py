"""A live platform with a queue: gunicorn, Celery workers in their own processes, celery beat.

Every part is a real process over a real broker (Redis or RabbitMQ), the Redis store and a
database of its own; tests talk to it over HTTP only, as users do.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests import services
from tests.conftest import Platform

FAST_RECOVERY = {
    "AK_RUN__HEARTBEAT": "0.2",
    "AK_RUN__HEARTBEAT_TIMEOUT": "2",
    "AK_RUN__SWEEP_INTERVAL": "0.5",
    "AK_RUN__BUSY_RETRY": "0.05",
    "AK_SESSION__LOCK_LEASE": "2",
}


@dataclass
class Queue:
    platform: Platform
    workers: dict[str, services.Process]
    invocations: Path
    tmp: Path
    extra: list[services.Process] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.platform.key}"}

    def post(self, path: str, body: dict, **headers: str) -> requests.Response:
        return requests.post(f"{self.platform.url}{path}", json=body, headers={**self.headers, **headers}, timeout=60)

    def get(self, path: str, **params: object) -> requests.Response:
        return requests.get(f"{self.platform.url}{path}", params=params, headers=self.headers, timeout=60)

    def agent(self, name: str, **config: object) -> str:
        """Make an agent of the ``counting`` framework (echo that logs each invocation)."""
        response = self.post("/agents", {"name": name, "framework": "counting", "config": config})
        assert response.status_code == 201, response.text
        return name

    def enqueue(self, agent: str, message: str, session_id: str, **extra: object) -> dict:
        body = {"agent": agent, "message": message, "session_id": session_id, "async": True, **extra}
        response = self.post("/run", body)
        assert response.status_code == 202, response.text
        assert response.headers["Location"].endswith(f"/runs/{response.json()['run_id']}")
        return response.json()

    def run(self, run_id: str) -> dict:
        response = self.get(f"/runs/{run_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait(self, run_id: str, until: Callable[[dict], bool], timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if until(run):
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} is still {run['status']} after {timeout} s: {run}")
            time.sleep(0.05)

    def finished(self, run_id: str, timeout: float = 60) -> dict:
        return self.wait(run_id, lambda r: r["status"] in ("succeeded", "failed", "cancelled"), timeout)

    def messages(self, session_id: str) -> list[dict]:
        response = self.get(f"/sessions/{session_id}/messages", limit=500)
        assert response.status_code == 200, response.text
        return response.json()["messages"]

    def add_worker(self) -> str:
        """Start one more worker, as a machine joining; it is stopped with the rest."""
        name = f"w{len(self.workers)}-{uuid.uuid4().hex[:6]}"
        worker = services.celery_worker(name, env=self.platform.env, log=self.tmp / f"{name}.log").start()
        self.workers[name] = worker
        self.extra.append(worker)
        return name

    def worker_of(self, *run_ids: str) -> dict[str, str]:
        """The process (``name@host:pid``) that last executed each run, read from the database as
        the admin shows it (the API does not show tenants their workers)."""
        code = (
            "import json; from agents_app.models import Run;"
            f" rows = Run.objects.filter(pk__in={list(run_ids)!r}).values_list('pk', 'worker');"
            " print(json.dumps({str(pk): worker for pk, worker in rows}))"
        )
        manage = [sys.executable, str(services.ROOT / "manage.py"), "shell", "-c", code]
        out = subprocess.run(manage, env=self.platform.env, cwd=services.ROOT, check=True, capture_output=True)
        workers = json.loads(out.stdout.decode().strip().splitlines()[-1])
        return {run_id: workers[run_id] for run_id in run_ids}

    def invoked(self) -> Counter[str]:
        """How many times the adapter ran each message, across every worker process."""
        return Counter(self.invocations.read_text().splitlines())


@pytest.fixture
def start_queue(start_platform, tmp_path: Path, redis_url: str) -> Iterator[Callable[..., Queue]]:
    """``start_queue("redis"|"rabbitmq", workers=2, env={...})``: the platform and its workers."""
    started: list[services.Process] = []

    def start(
        broker: str, *, workers: int = 2, concurrency: int | None = None, env: dict[str, str] | None = None
    ) -> Queue:
        if broker == "redis":
            broker_url = redis_url.rsplit("/", 1)[0] + "/1"
        else:
            broker_url = services.ensure_rabbitmq()
            if broker_url is None:
                pytest.fail("RabbitMQ is needed: apt-get install rabbitmq-server && rabbitmq-server -detached")
        tag = uuid.uuid4().hex[:8]
        invocations = tmp_path / f"invocations-{tag}.log"
        invocations.touch()
        platform = start_platform(
            {
                "AK_SESSION__TYPE": "redis",
                "AK_SESSION__REDIS__URL": redis_url,
                "CELERY_BROKER_URL": broker_url,
                "CELERY_TASK_DEFAULT_QUEUE": f"test-{tag}",
                "AK_FRAMEWORKS": "counting=tests.frameworks.CountingEchoFramework",
                "AK_TEST_INVOCATIONS": str(invocations),
                **FAST_RECOVERY,
                **(env or {}),
            }
        )
        procs = {}
        for i in range(workers):
            name = f"w{i}-{tag}"
            procs[name] = services.celery_worker(
                name, env=platform.env, log=tmp_path / f"{name}.log", concurrency=concurrency
            ).start()
            started.append(procs[name])
        beat = services.celery_beat(
            env=platform.env, log=tmp_path / f"beat-{tag}.log", schedule=tmp_path / f"beat-{tag}"
        ).start()
        started.append(beat)
        # ``extra`` is the list of what the fixture stops: workers added later go there too.
        return Queue(platform=platform, workers=procs, invocations=invocations, tmp=tmp_path, extra=started)

    yield start
    for process in started:
        process.stop()
