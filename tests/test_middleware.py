"""Django's middleware, as the admin expects it: API answers carry no cookie and a Content-Length."""

from __future__ import annotations


def test_api_answers_set_no_cookie(alice) -> None:
    response = alice.post("/run", {"agent": "echo", "message": "hi"})
    assert response.status_code == 200
    assert "sessionid" not in response.cookies and "csrftoken" not in response.cookies
    assert response["Content-Length"] == str(len(response.content))


def test_the_console_has_its_middleware(client) -> None:
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert "csrftoken" in response.cookies and response["X-Frame-Options"] == "DENY"
