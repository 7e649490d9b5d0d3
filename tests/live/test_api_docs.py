"""The OpenAPI document, and a docs page whose assets all come from the server itself."""

from __future__ import annotations

import re

import requests


def test_schema_and_offline_docs(start_platform) -> None:
    platform = start_platform({"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "x" * 50, "AK_SECRETS_KEY": "y" * 40})
    schema = requests.get(f"{platform.url}/api/schema/?format=json", timeout=30)
    assert schema.status_code == 200
    document = schema.json()
    assert document["openapi"].startswith("3.")
    for path in ["/run", "/api/v1/chat", "/runs/{run_id}", "/sessions/{session_id}/messages", "/agents", "/health"]:
        assert path in document["paths"], path
    assert document["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"

    page = requests.get(f"{platform.url}/api/docs/", timeout=30)
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and not [a for a in assets if a.startswith(("http://", "https://", "//"))]
    for asset in assets:
        if asset.startswith("/static/"):
            assert requests.get(f"{platform.url}{asset}", timeout=30).status_code == 200, asset
