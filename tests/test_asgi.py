"""The web tier under ASGI: no middleware is adapted to a thread, static files still served."""

from __future__ import annotations

import logging

import pytest
from asgiref.sync import async_to_sync
from django.core.handlers.asgi import ASGIHandler
from django.test import AsyncClient


def test_no_middleware_is_adapted_to_a_thread(settings, caplog: pytest.LogCaptureFixture) -> None:
    """A sync-only middleware would hold a thread for each request, through a sync run's wait."""
    settings.DEBUG = True  # Django says what it adapts only then
    with caplog.at_level(logging.DEBUG, logger="django.request"):
        ASGIHandler()
    assert "adapted" not in caplog.text


def test_static_files_are_served_under_asgi() -> None:
    response = async_to_sync(AsyncClient().get)("/static/admin/css/base.css")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/css")
    assert async_to_sync(AsyncClient().get)("/static/admin/css/nope.css").status_code == 404


def test_an_async_view_answers_under_asgi(alice) -> None:
    """An async view (adrf's) answers, and a method it does not have is a 405 after authentication."""
    run = alice.post("/run", {"agent": "echo", "message": "hi"}).json()
    client, key = AsyncClient(), {"Authorization": f"Bearer {alice.key}"}
    shown = async_to_sync(client.get)(f"/runs/{run['run_id']}", headers=key)
    assert shown.status_code == 200 and shown.json()["status"] == "succeeded"
    assert shown.json()["result"] == run["result"] and shown.json()["agent"] == "echo"
    assert async_to_sync(client.delete)(f"/runs/{run['run_id']}", headers=key).status_code == 405
    assert async_to_sync(AsyncClient().delete)(f"/runs/{run['run_id']}").status_code == 401


def test_the_security_headers_are_set_under_asgi(settings) -> None:
    """Django's SecurityMiddleware: its headers, and its redirect."""
    response = async_to_sync(AsyncClient().get)("/health")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin" and response["Cross-Origin-Opener-Policy"] == "same-origin"
    settings.SECURE_SSL_REDIRECT = True
    assert async_to_sync(AsyncClient().get)("/health").status_code == 301


def test_an_async_views_checks_give_their_database_connection_back(alice) -> None:
    """DRF's checks (the key looked up) run before the handler awaits its model: by then the
    request holds no connection (PostgreSQL's pool gets it back, CONN_MAX_AGE 0)."""
    from django.db import connection
    from rest_framework.test import APIRequestFactory

    from agents_app.api.views.runs import RunView

    request = APIRequestFactory().post("/run", {}, format="json", HTTP_AUTHORIZATION=f"Bearer {alice.key}")
    view = RunView()
    view.setup(request)
    drf_request = view.initialize_request(request)
    connection.close()
    max_age = connection.settings_dict["CONN_MAX_AGE"]
    connection.settings_dict["CONN_MAX_AGE"] = 0
    try:
        view.initial(drf_request)
        assert drf_request.user.tenant.pk == alice.tenant.pk  # authenticated, from the database
        assert connection.connection is None
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = max_age
