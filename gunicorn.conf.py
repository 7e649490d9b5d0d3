"""gunicorn's settings for the web tier: `gunicorn akplatform.asgi:application [-b HOST:PORT] [-w N]`.

ASGI on uvicorn's workers: each process serves its requests on one event loop, so a sync
`POST /run` awaits its model without holding a thread (see infra/io_threads.py). One process per
core is enough to carry hundreds of runs at once; `-w` (or WEB_CONCURRENCY) changes it.

Metrics: with PROMETHEUS_MULTIPROC_DIR set (shared with the machine's Celery workers), the
arbiter makes the directory and drops what killed processes left there as it starts, and drops
each exited worker's live gauges (infra.metrics). With AK_LOG_FORMAT=json, gunicorn's and
uvicorn's own lines are JSON too (infra.logs).

Client addresses: uvicorn takes a request's REMOTE_ADDR from X-Forwarded-For only when the
connection comes from gunicorn's `forwarded_allow_ips` (`--forwarded-allow-ips`, or the
FORWARDED_ALLOW_IPS variable; default 127.0.0.1,::1). Behind a proxy elsewhere, set it to the
proxy's address, or the failed-authentication lockout counts every client as the proxy.
"""

import os

worker_class = "uvicorn_worker.UvicornWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))
bind = ["127.0.0.1:8000"]
# A worker that does not answer gunicorn's heartbeat for this long is restarted. Requests
# themselves are not timed here: a sync run ends by AK_RUN__TIME_LIMIT.
timeout = 60
graceful_timeout = 30
keepalive = 75  # past common load balancers' idle timeouts, so they close first
backlog = 2048

if os.environ.get("AK_LOG_FORMAT", "").strip() == "json":
    # gunicorn's defaults (one handler per stream), with the platform's formatter, not propagated
    # to the root logger (which the settings give their own handler in each worker).
    logconfig_dict = {
        "formatters": {"generic": {"()": "infra.logs.JsonFormatter"}},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        },
    }


def on_starting(server):
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if path:
        os.makedirs(path, exist_ok=True)  # before the metrics, whose import opens their files there
        from infra.metrics import forget_dead_processes

        forget_dead_processes(path)


def child_exit(server, worker):
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if path:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, path)
