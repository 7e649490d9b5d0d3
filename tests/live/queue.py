"""A live platform with a queue: gunicorn, Celery workers in their own processes, celery beat.

Every part is a real process over a real broker (Redis or RabbitMQ), the Redis store and a
database of its own; tests talk to it over HTTP only, as users do. A queue is started once and lent
to each test that asks for the same one (``tests.conftest.LiveServers``), with a tenant of its own.
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
from tests.live.servers import LiveServers, Platform, Stack

#: A lost run is found within 3 s. The sweep is the costliest thing an idle queue does (beat sends
#: it, a worker runs it: about 0.9 s of CPU a minute at one a second), and some four queues are up
#: at any time of the suite.
FAST_RECOVERY = {
    "AK_RUN__HEARTBEAT": "0.2",
    "AK_RUN__HEARTBEAT_TIMEOUT": "2",
    "AK_RUN__SWEEP_INTERVAL": "1",
    "AK_RUN__BUSY_RETRY": "0.05",
    "AK_SESSION__LOCK_LEASE": "2",
}
#: For a test that is not about recovery: a heartbeat late on a busy machine is not a lost run.
NO_RECOVERY = {"AK_RUN__HEARTBEAT_TIMEOUT": "20", "AK_SESSION__LOCK_LEASE": "30"}


@dataclass
class Queue:
    platform: Platform
    workers: dict[str, services.Process]
    invocations: Path
    tmp: Path
    extra: list[services.Process] = field(default_factory=list)
    since: int = 0  # where this test's lines start in ``invocations``: a lent queue ran other tests' runs

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

    def add_worker(self, concurrency: int | None = None) -> str:
        """Start one more worker, as a machine joining; it is stopped with the rest."""
        name = f"w{len(self.workers)}-{uuid.uuid4().hex[:6]}"
        log = self.tmp / f"{name}.log"
        worker = services.celery_worker(name, env=self.platform.env, log=log, concurrency=concurrency).start()
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
        with self.invocations.open("rb") as log:
            log.seek(self.since)
            return Counter(log.read().decode().splitlines())


def _launch(
    live_servers: LiveServers, redis_url: str, broker: str, workers: int, concurrency: int | None, env: dict[str, str]
) -> Stack:
    if broker == "redis":
        broker_url = redis_url.rsplit("/", 1)[0] + "/1"
    else:
        broker_url = services.rabbitmq_url()
        if broker_url is None:
            pytest.fail("RabbitMQ is needed: apt-get install rabbitmq-server && rabbitmq-server -detached")
    tag = uuid.uuid4().hex[:8]
    names = [f"w{i}-{tag}" for i in range(workers)]

    def workers_and_beat(env: dict[str, str], directory: Path) -> list[services.Process]:
        made = [services.celery_worker(n, env=env, log=directory / f"{n}.log", concurrency=concurrency) for n in names]
        return [*made, services.celery_beat(env=env, log=directory / "beat.log", schedule=directory / "beat")]

    stack = live_servers.platform(
        {
            "AK_SESSION__TYPE": "redis",
            "AK_SESSION__REDIS__URL": redis_url,
            "CELERY_BROKER_URL": broker_url,
            "CELERY_TASK_DEFAULT_QUEUE": f"test-{tag}",
            "AK_FRAMEWORKS": "counting=tests.frameworks.CountingEchoFramework",
            "AK_TEST_INVOCATIONS": str(live_servers.directory / f"invocations-{tag}.log"),
            **FAST_RECOVERY,
            **env,
        },
        workers=2,
        beside=workers_and_beat,
    )
    invocations, tmp = Path(stack.base.env["AK_TEST_INVOCATIONS"]), stack.directory
    invocations.touch()
    procs = dict(zip(names, stack.processes[1 : 1 + workers], strict=True))
    stack.extra = Queue(platform=stack.base, workers=procs, invocations=invocations, tmp=tmp)
    return stack


@pytest.fixture
def start_queue(live_servers: LiveServers, redis_url: str) -> Iterator[Callable[..., Queue]]:
    """``start_queue("redis"|"rabbitmq", workers=2, env={...}, fresh=False)``: the platform and its
    workers; the same ones another test started with the same arguments when they are still up
    (``fresh``: this test's own, stopped after it)."""
    lent: list[tuple[tuple | None, Stack]] = []

    def start(
        broker: str,
        *,
        workers: int = 2,
        concurrency: int | None = None,
        env: dict[str, str] | None = None,
        fresh: bool = False,
    ) -> Queue:
        env = env or {}
        key = None if fresh else ("queue", broker, workers, concurrency, tuple(sorted(env.items())))
        stack = live_servers.borrow(key, lambda: _launch(live_servers, redis_url, broker, workers, concurrency, env))
        lent.append((key, stack))
        made: Queue = stack.extra  # type: ignore[assignment]
        # ``extra`` is what the stack stops: workers added later go there too (and end its lending).
        return Queue(
            platform=stack.tenant(),
            workers=dict(made.workers),
            invocations=made.invocations,
            tmp=made.tmp,
            extra=stack.processes,  # type: ignore[arg-type]
            since=made.invocations.stat().st_size,
        )

    yield start
    for key, stack in lent:
        live_servers.give_back(key, stack)
