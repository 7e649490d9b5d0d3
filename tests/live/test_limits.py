"""Rate limits through the shared cache: every web process counts against the same limit."""

from __future__ import annotations

import pytest
import requests

pytestmark = pytest.mark.slow


def test_a_tenants_rate_is_shared_by_every_web_process(start_platform, redis_url: str) -> None:
    platform = start_platform(
        {"AK_SESSION__TYPE": "redis", "AK_SESSION__REDIS__URL": redis_url, "AK_API__THROTTLE_RATE": "6/min"},
        workers=2,
    )
    headers = {"Authorization": f"Bearer {platform.key}"}
    # A new connection for each request: gunicorn hands them to either process.
    answers = [requests.get(f"{platform.url}/agents", headers=headers, timeout=10) for _ in range(14)]
    codes = [answer.status_code for answer in answers]
    assert codes.count(200) == 6 and codes.count(429) == 8, codes  # per process, it would be up to 12
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert refused.json()["code"] == "throttled" and int(refused.headers["Retry-After"]) > 0
