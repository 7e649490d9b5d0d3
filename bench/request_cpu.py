"""CPU per API request in one process, with the project's middleware and with none, and the
thread hops each request makes: the floor under ``bench/concurrency.py``'s figures.

A web process serves requests on one event loop (ASGI). Every blocking step leaves the loop for a
thread and comes back: Django runs each of its built-in middleware's ``process_request`` and
``process_response`` through ``sync_to_async`` (Django's docs: "a thread per request" for a site
with synchronous middleware), adrf runs DRF's checks the same way, and the ORM and the store go to
the I/O pool. Each hop is a handoff of the GIL between two threads. This bench counts them
(executor submissions per request) and the process's CPU per request, for:

- ``GET /runs/<id>`` (a poll: authentication, one SELECT, the serializer);
- ``POST /run`` (a sync run of an ``echo`` agent on a new session: the run recorded, executed
  on the in-memory store, ended).

Each is measured through the project's ``MIDDLEWARE`` and through none (Django's test
``AsyncClient`` under ``override_settings(MIDDLEWARE=[])``, which no deployment can run: the admin
needs its session, auth and messages middleware); the difference is what Django's synchronous
middleware costs a request. Nothing but this process runs: a temporary SQLite database, the
in-memory session store, the local-memory cache (so the API key is looked up on every request).

    .venv/bin/python bench/request_cpu.py [--requests 500] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def setup(work: Path) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "akplatform.settings",
            "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "bench-" + "x" * 40,
            "AK_SECRETS_KEY": "bench-" + "y" * 40,
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "AK_SESSION__TYPE": "in_memory",
            "AK_API__THROTTLE_RATE": "1000000/min",
        }
    )
    # The project first; and not bench/ (its queue.py would shadow the standard library's).
    sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent)]
    import django

    django.setup()
    import logging

    logging.disable(logging.INFO)  # a run's "succeeded" line is not what is measured
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


class HopCounter:
    """Counts the work handed to any thread pool (``sync_to_async``'s and the I/O pool's)."""

    def __init__(self) -> None:
        self.count = 0
        self._submit = concurrent.futures.ThreadPoolExecutor.submit

    def __enter__(self) -> HopCounter:
        counter, submit = self, self._submit

        def counting(executor: concurrent.futures.ThreadPoolExecutor, *args: Any, **kwargs: Any) -> Any:
            counter.count += 1
            return submit(executor, *args, **kwargs)

        concurrent.futures.ThreadPoolExecutor.submit = counting  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        concurrent.futures.ThreadPoolExecutor.submit = self._submit  # type: ignore[method-assign]


async def measure(requests: int, rounds: int) -> dict[str, dict[str, float]]:
    from django.test import AsyncClient, override_settings

    from agents_app.models import Agent
    from sessions_app.services import api_key_issue, tenant_create

    tenant, _ = await asyncio.to_thread(tenant_create, slug="bench", name="bench")
    _, key = await asyncio.to_thread(api_key_issue, tenant=tenant, name="bench")
    await Agent.objects.aget_or_create(tenant=tenant, name="echo", defaults={"framework": "echo"})
    headers = {"Authorization": f"Bearer {key}"}

    async def post(client: AsyncClient) -> str:
        body = {"agent": "echo", "message": "hi"}
        response = await client.post("/run", body, content_type="application/json", headers=headers)
        assert response.status_code == 200, response.content
        return json.loads(response.content)["run_id"]

    async def get(client: AsyncClient, run_id: str) -> None:
        response = await client.get(f"/runs/{run_id}", headers=headers)
        assert response.status_code == 200, response.content

    results: dict[str, dict[str, list[float]]] = {}
    for _ in range(rounds):
        for stack in ("project middleware", "no middleware"):
            overrides = {"MIDDLEWARE": []} if stack == "no middleware" else {}
            with override_settings(**overrides):
                client = AsyncClient()
                run_id = await post(client)
                for name in ("GET /runs/<id>", "POST /run"):
                    one = partial(get, client, run_id) if name.startswith("GET") else partial(post, client)
                    for _ in range(20):  # warm-up
                        await one()
                    with HopCounter() as hops:
                        started = time.process_time()
                        for _ in range(requests):
                            await one()
                        cpu = time.process_time() - started
                    row = results.setdefault(f"{name}, {stack}", {"cpu_ms": [], "hops": []})
                    row["cpu_ms"].append(1000 * cpu / requests)
                    row["hops"].append(hops.count / requests)
    return {
        name: {"cpu_ms": statistics.median(row["cpu_ms"]), "hops": statistics.median(row["hops"])}
        for name, row in results.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per measurement (default 500)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is printed (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ak-bench-request-cpu-") as work:
        setup(Path(work))
        figures = asyncio.run(measure(args.requests, args.rounds))
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"{'request':<42} {'CPU ms':>7} {'thread hops':>12}")
    for name, row in figures.items():
        print(f"{name:<42} {row['cpu_ms']:>7.2f} {row['hops']:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
