"""GET /health: the status only (200 ok, 503 unavailable); which dependency and why only with the
metrics token."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from sessions_app.stores.redis import RedisStore
from tests.services import free_port

TOKEN = "metrics-token-0123456789abcdef0123456789"
OPERATOR = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def _token(settings) -> None:
    settings.AK_METRICS = {**settings.AK_METRICS, "TOKEN": TOKEN}


def test_healthy(db) -> None:
    response = APIClient().get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthy_in_detail_with_the_metrics_token(db) -> None:
    response = APIClient().get("/health", **OPERATOR)
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "store": "ok", "broker": "ok"},
        "failing": [],
    }


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789abcdef0123456789", f"Token {TOKEN}", f"Bearer {TOKEN}x"],
)
def test_a_store_that_is_down_is_named_to_the_token_only(db, use_store, authorization) -> None:
    use_store(RedisStore(url=f"redis://:hunter2-pw@127.0.0.1:{free_port()}/0"))
    extra = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = APIClient().get("/health", **extra)
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}
    detailed = APIClient().get("/health", **OPERATOR)
    assert detailed.status_code == 503
    assert detailed.json()["failing"] == ["store"]
    assert detailed.json()["checks"]["store"].startswith("StoreUnavailable")
    assert "hunter2-pw" not in detailed.content.decode()


def test_without_a_token_set_nobody_sees_the_detail(db, use_store, settings) -> None:
    settings.AK_METRICS = {**settings.AK_METRICS, "TOKEN": None}
    use_store(RedisStore(url=f"redis://127.0.0.1:{free_port()}/0"))
    for extra in ({}, {"HTTP_AUTHORIZATION": "Bearer "}, {"HTTP_AUTHORIZATION": "Bearer None"}):
        response = APIClient().get("/health", **extra)
        assert response.status_code == 503 and response.json() == {"status": "unavailable"}


def test_a_broker_that_is_down_is_named(db, settings) -> None:
    from akplatform.celery import app

    previous = app.conf.broker_url, app.conf.broker_transport  # the transport: the embedded broker's
    app.conf.broker_url, app.conf.broker_transport = f"redis://127.0.0.1:{free_port()}/0", None
    try:
        public = APIClient().get("/health")
        detailed = APIClient().get("/health", **OPERATOR)
    finally:
        app.conf.broker_url, app.conf.broker_transport = previous
    assert public.status_code == 503 and public.json() == {"status": "unavailable"}
    assert detailed.status_code == 503
    assert detailed.json()["failing"] == ["broker"]
