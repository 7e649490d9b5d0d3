"""The admin pages an operator opens answer 200 (the full console is issue 4)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/sessions_app/tenant/",
        "/admin/sessions_app/apikey/",
        "/admin/sessions_app/enduser/",
        "/admin/sessions_app/thread/",
        "/admin/sessions_app/session/",
        "/admin/agents_app/agent/",
        "/admin/agents_app/run/",
    ],
)
def test_admin_pages_open(admin_client, alice, path: str) -> None:
    alice.post("/run", {"agent": "echo", "message": "x", "user_id": "u"})
    assert admin_client.get(path).status_code == 200
