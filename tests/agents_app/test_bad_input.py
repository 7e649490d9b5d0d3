"""Bad input answers its contract code, never a 500, and changes nothing that is stored."""

from __future__ import annotations

import json

import pytest

from agents_app.models import Agent, Run
from sessions_app.models import EndUser, Session, Thread
from sessions_app.stores import get_store
from sessions_app.stores.base import SessionKey

SID = "kept-1"


@pytest.fixture
def seeded(alice):
    assert alice.post("/run", {"agent": "echo", "message": "keep me", "session_id": SID}).status_code == 200
    return alice


def stored(tenant_slug: str) -> tuple:
    key = SessionKey(tenant=tenant_slug, session_id=SID)
    snap = get_store().load(key, window=100)
    rows = tuple(m.objects.count() for m in (Session, Thread, Run, EndUser, Agent))
    return snap.version, [m.content for m in snap.messages], rows


BAD_BODIES = [
    pytest.param("{not json", 400, None, id="malformed-json"),
    pytest.param("[1, 2]", 400, None, id="not-an-object"),
    pytest.param({"message": "x", "session_id": SID}, 400, "agent", id="missing-agent"),
    pytest.param({"agent": "echo", "session_id": SID}, 400, "message", id="missing-message"),
    pytest.param({"agent": 7, "message": "x", "session_id": SID}, 400, "agent", id="agent-not-string"),
    pytest.param({"agent": "echo", "message": ["x"], "session_id": SID}, 400, "message", id="message-not-string"),
    pytest.param({"agent": "echo", "message": 12, "session_id": SID}, 400, "message", id="message-a-number"),
    pytest.param({"agent": "echo", "message": "x", "session_id": 5}, 400, "session_id", id="session-id-number"),
    pytest.param({"agent": "echo", "message": "x", "session_id": "../etc"}, 400, "session_id", id="session-id-path"),
    pytest.param({"agent": "echo", "message": "x", "session_id": "a b"}, 400, "session_id", id="session-id-space"),
    pytest.param({"agent": "echo", "message": "x", "session_id": "s" * 300}, 400, "session_id", id="session-id-long"),
    pytest.param({"agent": "echo", "message": "x", "session_id": SID, "async": "yes"}, 400, "async", id="async-str"),
    pytest.param({"agent": "echo", "message": "x", "session_id": SID, "on_busy": "wait"}, 400, "on_busy", id="busy"),
    pytest.param({"agent": "echo", "message": "x", "session_id": SID, "user_id": 3}, 400, "user_id", id="user-int"),
    pytest.param({"agent": "nobody", "message": "x", "session_id": SID}, 404, None, id="unknown-agent"),
    pytest.param({"agent": "echo", "message": "é" * 40000, "session_id": SID}, 413, None, id="oversized-message"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_BODIES)
def test_bad_run_requests(seeded, body, status: int, field: str | None) -> None:
    before = stored(seeded.tenant.slug)
    payload = body if isinstance(body, str) else json.dumps(body)
    response = seeded.client.post("/run", payload, content_type="application/json")
    assert response.status_code == status, response.content
    error = response.json()
    assert isinstance(error, dict) and error["code"] and error["detail"]
    if field:
        assert field in error["fields"]
    assert stored(seeded.tenant.slug) == before


def test_a_huge_body_is_413_not_500(seeded) -> None:
    before = stored(seeded.tenant.slug)
    body = json.dumps({"agent": "echo", "message": "x" * (2 * 1024 * 1024), "session_id": SID})
    response = seeded.client.post("/run", body, content_type="application/json")
    assert response.status_code == 413
    assert stored(seeded.tenant.slug) == before


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer wrong-key", "Token abc", "Bearer a b", "Basic dXNlcjpwYXNz"],
)
def test_no_or_bad_key_is_401(seeded, header: str | None) -> None:
    from rest_framework.test import APIClient

    before = stored(seeded.tenant.slug)
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    for method, path in [("post", "/run"), ("get", f"/sessions/{SID}/messages"), ("delete", f"/sessions/{SID}")]:
        response = getattr(client, method)(path, {"agent": "echo", "message": "x", "session_id": SID}, format="json")
        assert response.status_code == 401, (header, path)
        assert response["WWW-Authenticate"] == "Bearer"
    assert stored(seeded.tenant.slug) == before


def test_a_revoked_key_is_401(seeded) -> None:
    from sessions_app.models import ApiKey
    from sessions_app.services import api_key_revoke

    api_key_revoke(api_key=ApiKey.objects.get(tenant=seeded.tenant))
    assert seeded.post("/run", {"agent": "echo", "message": "x"}).status_code == 401


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=abc", "cursor=-1", "cursor=abc"])
def test_bad_paging_is_400(seeded, query: str) -> None:
    response = seeded.get(f"/sessions/{SID}/messages?{query}")
    assert response.status_code == 400
    assert response.json()["fields"]


@pytest.mark.parametrize(
    "cursor",
    [
        "2026-11-25T10:00:00+00:00_" + "-" * 36,  # not a run id
        "2026-11-25T10:00:00_00000000-0000-0000-0000-000000000000",  # no offset
        "2026-13-45T10:00:00+00:00_00000000-0000-0000-0000-000000000000",  # no such date
        "x" * 81,
    ],
)
def test_bad_run_cursors_are_400(seeded, cursor: str) -> None:
    response = seeded.client.get(f"/sessions/{SID}/runs", {"cursor": cursor})
    assert response.status_code == 400 and "cursor" in response.json()["fields"]
    assert seeded.client.get(f"/sessions/{SID}/runs", {"limit": 0}).status_code == 400


def test_unknown_run_ids_are_404(seeded) -> None:
    for run_id in ["not-a-uuid", "00000000-0000-0000-0000-000000000000"]:
        assert seeded.get(f"/runs/{run_id}").status_code == 404
        assert seeded.post(f"/runs/{run_id}/cancel").status_code == 404


def test_throttled_requests_are_429(seeded, settings) -> None:
    from django.core.cache import cache

    from agents_app.api.throttling import TenantRateThrottle

    cache.clear()
    TenantRateThrottle.THROTTLE_RATES = {**TenantRateThrottle.THROTTLE_RATES, "tenant": "3/min"}
    try:
        codes = [seeded.get("/agents").status_code for _ in range(5)]
    finally:
        TenantRateThrottle.THROTTLE_RATES = {**TenantRateThrottle.THROTTLE_RATES, "tenant": "6000/min"}
        cache.clear()
    assert codes[:3] == [200, 200, 200]
    assert codes[3:] == [429, 429]
