"""GET /health: 200 when the database, store and broker answer; 503 naming the one that does not."""

from __future__ import annotations

from rest_framework.test import APIClient

from sessions_app.stores.redis import RedisStore
from tests.services import free_port


def test_healthy(db) -> None:
    response = APIClient().get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "store": "ok", "broker": "ok"},
        "failing": [],
    }


def test_a_store_that_is_down_is_named(db, use_store) -> None:
    use_store(RedisStore(url=f"redis://127.0.0.1:{free_port()}/0"))
    response = APIClient().get("/health")
    assert response.status_code == 503
    assert response.json()["failing"] == ["store"]
    assert response.json()["checks"]["store"].startswith("StoreUnavailable")


def test_a_broker_that_is_down_is_named(db, settings) -> None:
    from akplatform.celery import app

    previous = app.conf.broker_url
    app.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    try:
        response = APIClient().get("/health")
    finally:
        app.conf.broker_url = previous
    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]
