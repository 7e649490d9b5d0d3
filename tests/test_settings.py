"""A wrong setting stops start-up with a message that names the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.services import ROOT


def start(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "akplatform.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AK_SESSION__TYPE", "mongodb"),
        ("AK_SESSION__TTL", "a week"),
        ("AK_SESSION__TTL", "-5"),
        ("DJANGO_DEBUG", "maybe"),
        ("AK_RUN__MAX_MESSAGE_BYTES", "1.5"),
        ("AK_SESSION__LOCK_LEASE", "soon"),
    ],
)
def test_a_wrong_value_stops_start_up_naming_the_variable(name: str, value: str) -> None:
    result = start({name: value})
    assert result.returncode != 0
    assert name in result.stderr
    assert "ImproperlyConfigured" in result.stderr


def test_defaults_start() -> None:
    result = start({})
    assert result.returncode == 0, result.stderr


def test_production_with_the_default_secret_warns_loudly() -> None:
    result = start({"DJANGO_DEBUG": "false", "DJANGO_ALLOWED_HOSTS": "example.com"})
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_the_store_type_picks_the_backend(settings) -> None:
    from sessions_app.stores import build_store

    for kind, cls in [("in_memory", "InMemoryStore"), ("redis", "RedisStore"), ("dynamodb", "DynamoDBStore")]:
        assert type(build_store(kind)).__name__ == cls


def test_the_celery_app_reads_the_celery_settings_by_namespace(settings) -> None:
    from akplatform.celery import app

    conf = app.conf
    assert conf.task_acks_late is True and conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
    assert conf.worker_pool == "threads" and conf.worker_concurrency == settings.CELERY_WORKER_CONCURRENCY >= 100
    assert conf.task_default_queue == settings.CELERY_TASK_DEFAULT_QUEUE
    assert conf.broker_url == settings.CELERY_BROKER_URL
    assert conf.beat_schedule["sweep-runs"]["task"] == "agents_app.tasks.sweep_runs"
    assert conf.task_always_eager is False  # left at Celery's default
    assert conf.broker_transport is None  # kombu's own transport for the URL's scheme
