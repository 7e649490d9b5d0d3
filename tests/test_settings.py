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
        ("AK_AGENTS__MAX_CONNECTIONS_PER_TENANT", "0"),
        ("AK_AGENTS__MAX_CONNECTIONS_PER_TENANT", "many"),
        ("AK_LIMITS__AGENTS", "-1"),
        ("AK_LIMITS__EVENT_STREAMS", "many"),
        ("AK_AGENTS__PRELOAD", "echo,langchain"),
    ],
)
def test_a_wrong_value_stops_start_up_naming_the_variable(name: str, value: str) -> None:
    result = start({name: value})
    assert result.returncode != 0
    assert name in result.stderr
    assert "ImproperlyConfigured" in result.stderr


@pytest.mark.parametrize(
    ("tenants", "why"),
    [
        ("nope=acme", "'nope' is not declared in AK_AGENTS__TOOLS"),
        ("crm=Acme", "'Acme' is not a tenant's slug"),
        ("crm=", "expected name=tenant|tenant pairs"),
        ("crm=acme||globex", "expected name=tenant|tenant pairs"),
        ("crm=acme,crm=globex", "'crm' is named twice"),
    ],
)
def test_tools_kept_for_tenants_must_be_declared_tools_and_tenant_slugs(tenants: str, why: str) -> None:
    result = start(
        {"DJANGO_DEBUG": "1", "AK_AGENTS__TOOLS": "crm=tests.agent_tools.add", "AK_AGENTS__TOOL_TENANTS": tenants}
    )
    assert result.returncode != 0
    assert "AK_AGENTS__TOOL_TENANTS" in result.stderr and why in result.stderr


def test_tools_and_graphs_kept_for_tenants_are_read_by_name() -> None:
    env = {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "akplatform.settings",
        "AK_AGENTS__TOOLS": "crm=tests.agent_tools.add,weather=tests.agent_tools.get_weather",
        "AK_AGENTS__TOOL_TENANTS": "crm=acme|globex",
        "AK_AGENTS__GRAPHS": "chat=tests.agent_graphs.chat",
        "AK_AGENTS__GRAPH_TENANTS": "chat=acme",
    }
    code = (
        "from django.conf import settings; a = settings.AK_AGENTS; "
        "print(sorted(a['TOOL_TENANTS']['crm']), sorted(a['TOOL_TENANTS']), sorted(a['GRAPH_TENANTS']['chat']))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "['acme', 'globex'] ['crm'] ['acme']", result.stderr
    assert "GRAPH_TENANTS" in start({**env, "AK_AGENTS__GRAPH_TENANTS": "support=acme"}).stderr


@pytest.mark.parametrize(
    ("preload", "imported"),
    [
        (None, "google.adk=True langgraph=True"),
        ("langgraph", "google.adk=False langgraph=True"),
        ("", "google.adk=False langgraph=False"),
    ],
)
def test_a_web_process_imports_the_libraries_of_the_frameworks_it_preloads(preload: str | None, imported: str) -> None:
    env = {**os.environ, "DJANGO_DEBUG": "1", "DJANGO_SETTINGS_MODULE": "akplatform.settings"}
    env.pop("AK_AGENTS__PRELOAD", None)
    if preload is not None:
        env["AK_AGENTS__PRELOAD"] = preload
    code = (
        "import sys; import akplatform.asgi; "
        "print(' '.join(f'{name}={name in sys.modules}' for name in ('google.adk', 'langgraph')))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == imported, result.stderr


LOADED_ON_A_THREAD = """
import asyncio, sys
import django
django.setup()
from agents_app.frameworks import framework_loaded, get_framework

async def main():
    ticks = 0
    async def tick():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1
    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.05)
    before, imported = ticks, "google.adk" in sys.modules
    await framework_loaded(get_framework("google_adk"))
    ticker.cancel()
    print(imported, "google.adk" in sys.modules, ticks - before)

asyncio.run(main())
"""


def test_a_framework_not_preloaded_is_imported_by_its_first_run_off_the_event_loop() -> None:
    pytest.importorskip("google.adk")
    env = {**os.environ, "DJANGO_DEBUG": "1", "DJANGO_SETTINGS_MODULE": "akplatform.settings", "AK_AGENTS__PRELOAD": ""}
    result = subprocess.run(
        [sys.executable, "-c", LOADED_ON_A_THREAD], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    before, after, ticks = result.stdout.split()
    assert (before, after) == ("False", "True"), result.stderr
    assert int(ticks) >= 3  # the loop went on while the library was imported (on it: none)


def test_development_defaults_start() -> None:
    result = start({"DJANGO_DEBUG": "1"})
    assert result.returncode == 0, result.stderr


def test_debug_is_off_unless_set_and_then_the_default_secret_is_refused() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_DEBUG", "DJANGO_SECRET_KEY")}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.parametrize(
    "secrets_key",
    [None, "", "too-short-for-a-key", "dev-insecure-secrets-key-change-me-in-production"],
    ids=["unset", "empty", "short", "the-development-key"],
)
def test_with_debug_off_a_missing_or_weak_secrets_key_stops_start_up(secrets_key: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AK_SECRETS_KEY"}
    env.update({"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "k3y-" + "0123456789abcdefghijklmnopqrstuvwxyz" * 2})
    if secrets_key is not None:
        env["AK_SECRETS_KEY"] = secrets_key
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "AK_SECRETS_KEY" in result.stderr
    if secrets_key:
        assert secrets_key not in result.stderr.replace("AK_SECRETS_KEY", "")  # the message never shows a key


@pytest.mark.parametrize(
    ("chosen", "pool"),
    [(None, "threads"), ("threads", "threads"), ("prefork", "prefork")],
)
def test_the_worker_pool_a_deployment_chooses(chosen: str | None, pool: str) -> None:
    """Celery's own pools, chosen by name; ``threads`` unless the deployment says otherwise."""
    env = {k: v for k, v in os.environ.items() if k != "CELERY_WORKER_POOL"}
    env.update({"DJANGO_DEBUG": "1", "DJANGO_SETTINGS_MODULE": "akplatform.settings"})
    if chosen is not None:
        env["CELERY_WORKER_POOL"] = chosen
    code = "from django.conf import settings; print(settings.CELERY_WORKER_POOL)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == pool, result.stderr


def test_a_short_old_secrets_key_stops_start_up_even_in_development() -> None:
    result = start({"DJANGO_DEBUG": "1", "AK_SECRETS_OLD_KEYS": "a" * 40 + ",short-old-key"})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "AK_SECRETS_OLD_KEYS" in result.stderr
    assert "short-old-key" not in result.stderr


#: The production environment of the README's Deployment section (its secret made up here).
PRODUCTION_ENV = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "k3y-" + "0123456789abcdefghijklmnopqrstuvwxyz" * 2,
    "AK_SECRETS_KEY": "s3crets-" + "abcdefghijklmnopqrstuvwxyz0123456789",
    "DJANGO_ALLOWED_HOSTS": "ak.example.com",
    "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "DJANGO_SECURE_HSTS_PRELOAD": "true",
    "DJANGO_SECURE_SSL_REDIRECT": "true",
    "DJANGO_SECURE_COOKIES": "true",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "true",
}


def test_the_production_environment_passes_check_deploy_with_no_warning(settings) -> None:
    assert settings.SILENCED_SYSTEM_CHECKS == []  # every check runs: the admin's and the deploy checks
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**os.environ, **PRODUCTION_ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_the_https_settings_check_deploy_warns() -> None:
    env = {**os.environ, **PRODUCTION_ENV, "DJANGO_SECURE_HSTS_SECONDS": "0", "DJANGO_SECURE_COOKIES": "false"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert all(f"security.{check}" in result.stderr for check in ("W004", "W012", "W016"))


def test_the_store_type_picks_the_backend(settings) -> None:
    from sessions_app.stores import build_store

    for kind, cls in [("in_memory", "InMemoryStore"), ("redis", "RedisStore"), ("dynamodb", "DynamoDBStore")]:
        assert type(build_store(kind)).__name__ == cls


def test_the_celery_app_reads_the_celery_settings_by_namespace(settings) -> None:
    from akplatform.celery import app

    conf = app.conf
    assert conf.task_acks_late is True and conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
    assert conf.worker_pool == "threads"  # Celery's threads pool
    assert conf.worker_concurrency == settings.CELERY_WORKER_CONCURRENCY >= 100
    assert conf.task_default_queue == settings.CELERY_TASK_DEFAULT_QUEUE
    assert conf.broker_url == settings.CELERY_BROKER_URL
    assert conf.beat_schedule["sweep-runs"]["task"] == "agents_app.tasks.sweep_runs"
    assert conf.task_always_eager is False  # left at Celery's default
    # The embedded broker: kombu's filesystem transport, its messages written whole (any other URL:
    # kombu's own transport for its scheme, as the live tests' Redis and RabbitMQ brokers use).
    assert settings.CELERY_BROKER_URL == "filesystem://"
    assert conf.broker_transport == "infra.filesystem_broker:Transport"
