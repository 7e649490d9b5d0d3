"""The health of what a run depends on: the database, the session store and the broker."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection

from infra.redact import redact_urls
from sessions_app.stores import get_store


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _store() -> None:
    get_store().ping()


def _broker() -> None:
    from akplatform.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT)


CHECKS = {"database": _database, "store": _store, "broker": _broker}


def health_report() -> dict[str, Any]:
    """``{"status": "ok"|"unavailable", "checks": {name: "ok"|error}, "failing": [...]}``.

    The checks and their errors are for operators (``GET /health`` shows them only with the
    metrics token); an error's URL passwords are masked."""
    checks: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # any failure of a dependency is reported, not raised
            checks[name] = redact_urls(f"{type(exc).__name__}: {exc}")[:300]
    failing = [name for name, result in checks.items() if result != "ok"]
    return {"status": "unavailable" if failing else "ok", "checks": checks, "failing": failing}
