"""The platform's metrics, in Prometheus's format at ``GET /metrics`` (``prometheus_client``).

Never public: ``/metrics`` answers only ``Authorization: Bearer <AK_METRICS__TOKEN>`` (401
otherwise) and is a 404 while no token is set. With ``PROMETHEUS_MULTIPROC_DIR`` shared by every
web process and worker of a machine (prometheus_client's multiprocess mode), a scrape of any web
process adds them all up; ``gunicorn.conf.py`` and ``akplatform.celery`` keep the directory's
books. Without it each process counts its own.
"""

from __future__ import annotations

import glob
import hmac
import os
import re

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.exposition import choose_encoder

# Labels take bounded sets only: the deployment's frameworks, never names a tenant chooses.
RUNS = Counter("ak_runs", "Runs that ended, by how they ended and their agent's framework.", ["status", "framework"])
RUN_DURATION = Histogram(
    "ak_run_duration_seconds",
    "Seconds from a run's start to its end, by how it ended.",
    ["status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600),
)
RUN_QUEUE_WAIT = Histogram(
    "ak_run_queue_wait_seconds",
    "Seconds from an async run's request to its first claim by a worker (held for its tenant's turn included).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
RUNS_IN_FLIGHT = Gauge("ak_runs_in_flight", "Runs executing now.", multiprocess_mode="livesum")
STORE_ERRORS = Counter("ak_store_errors", "Session store errors met by runs, by class.", ["error"])
ADAPTER_ERRORS = Counter("ak_adapter_errors", "Runs whose adapter raised, by framework.", ["framework"])
HTTP_REQUESTS = Counter("ak_http_requests", "Answers of the web tier, by method and status.", ["method", "status"])


def exposition(accept: str = "") -> tuple[bytes, str]:
    """This process's metrics, or every process's in multiprocess mode; and their content type
    (the text format, or OpenMetrics when ``accept`` asks for it)."""
    encoder, content_type = choose_encoder(accept)
    path = settings.AK_METRICS["MULTIPROC_DIR"]
    if path is None:
        return encoder(REGISTRY), content_type
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return encoder(registry), content_type


def metrics_token_given(request: HttpRequest) -> bool:
    """Whether ``request`` carries ``Authorization: Bearer <AK_METRICS__TOKEN>`` (never, while
    the variable is unset): an operator's tool, which may see ``/metrics`` and ``/health``'s detail."""
    token = settings.AK_METRICS["TOKEN"]
    if token is None:
        return False
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


@require_GET
async def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics`` for Prometheus, with the bearer token; the files are read in a thread."""
    if settings.AK_METRICS["TOKEN"] is None:
        return JsonResponse({"code": "not_found", "detail": "Not found."}, status=404)
    if not metrics_token_given(request):
        body = {"code": "not_authenticated", "detail": "The metrics token is missing or wrong."}
        return JsonResponse(body, status=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    data, content_type = await sync_to_async(exposition, thread_sensitive=False)(request.headers.get("Accept", ""))
    return HttpResponse(data, content_type=content_type)


_LIVE_GAUGE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def forget_dead_processes(path: str) -> None:
    """Drop the live gauges (runs in flight) of processes that are gone without saying so (killed):
    their counters stay, so that totals do not go back. Called as a process type starts (gunicorn's
    arbiter, a Celery worker); the processes sharing ``path`` must share one pid namespace."""
    os.makedirs(path, exist_ok=True)
    pids = {int(m.group(1)) for f in glob.glob(os.path.join(path, "gauge_live*.db")) if (m := _LIVE_GAUGE.search(f))}
    for pid in pids - {os.getpid()}:
        try:
            os.kill(pid, 0)  # no signal: only whether it exists (PermissionError: it does, another user's)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, path)
        except PermissionError:
            continue
