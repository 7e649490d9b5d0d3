"""The console's middleware runs for /admin/ only; API responses still carry Content-Length."""

from __future__ import annotations


def test_api_requests_skip_the_consoles_middleware(alice) -> None:
    response = alice.post("/run", {"agent": "echo", "message": "hi"})
    assert response.status_code == 200
    assert "sessionid" not in response.cookies and "csrftoken" not in response.cookies
    assert "X-Frame-Options" not in response  # clickjacking protection is the console's
    assert response["Content-Length"] == str(len(response.content))


def test_the_console_keeps_its_middleware(client) -> None:
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert "csrftoken" in response.cookies and response["X-Frame-Options"] == "DENY"
