"""The Celery app: `celery -A akplatform worker`. Configured by the ``CELERY_*`` Django settings;
its processes log as the web tier does (``settings.LOGGING``; Celery's ``--loglevel`` does not
apply) and keep the books of the metrics' directory when there is one (``infra.metrics``)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import (
    setup_logging,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akplatform.settings")

app = Celery("akplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _make_broker_folders(sender: Celery, **kwargs: object) -> None:
    """The filesystem transport needs its folders before the first message."""
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            os.makedirs(options[key], exist_ok=True)


@setup_logging.connect
def _log_as_the_platform(**kwargs: object) -> None:
    """Celery configures no logging of its own when this signal has a receiver (its documented
    way out): the worker's and beat's lines are the platform's, JSON when it is."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


def _metrics_dir() -> str | None:
    from django.conf import settings

    return settings.AK_METRICS["MULTIPROC_DIR"]


@worker_init.connect
def _forget_dead_processes(**kwargs: object) -> None:
    """A worker starting drops the in-flight gauges that killed processes left behind."""
    if path := _metrics_dir():
        from infra.metrics import forget_dead_processes

        forget_dead_processes(path)


@worker_ready.connect
@worker_process_init.connect
def _freeze_loaded(**kwargs: object) -> None:
    """A worker ready to take tasks (and a prefork child as it starts) keeps what it loaded out of
    the garbage collector's full passes (``infra.heap``)."""
    from infra.heap import freeze_loaded

    freeze_loaded()


@worker_process_shutdown.connect
@worker_shutdown.connect
def _mark_process_dead(**kwargs: object) -> None:
    """An exiting worker (or prefork child) takes its runs-in-flight gauge with it."""
    if path := _metrics_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), path)
