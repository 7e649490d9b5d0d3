"""A revoked or deleted API key is refused by every web process from its next request on."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests import services

pytestmark = pytest.mark.slow


def _answers(url: str, key: str, n: int = 16) -> list[int]:
    """``n`` requests at once, each on a new connection: gunicorn hands them to both processes."""

    def one(_: int) -> int:
        return requests.get(f"{url}/agents", headers={"Authorization": f"Bearer {key}"}, timeout=30).status_code

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def _orm(env: dict[str, str], code: str) -> None:
    manage = [sys.executable, str(services.ROOT / "manage.py")]
    subprocess.run([*manage, "shell", "-c", code], env=env, check=True, cwd=services.ROOT)


def _new_key(env: dict[str, str], tenant: str) -> str:
    manage = [sys.executable, str(services.ROOT / "manage.py")]
    out = subprocess.run(
        [*manage, "create_tenant", tenant], env=env, check=True, cwd=services.ROOT, capture_output=True
    )
    return out.stdout.decode().strip().splitlines()[-1]


@pytest.mark.parametrize("shared_cache", [False, True], ids=["own-caches", "shared-cache"])
@pytest.mark.parametrize(
    "change",
    [
        "k.revoked_at = timezone.now(); k.save()",  # the admin's Revoke action does this
        "k.delete()",
    ],
    ids=["revoked", "deleted"],
)
def test_a_key_stops_working_in_every_process_at_once(
    start_platform, request: pytest.FixtureRequest, change: str, shared_cache: bool
) -> None:
    """With a cache in each process every request looks its key up; with a shared one (Redis) each
    process remembers keys while the shared generation stands, and the change writes a new one."""
    env = {"AK_API__AUTH_FAILURE_LIMIT": "1000"}  # 401s, not the lockout's 429s
    if shared_cache:
        env["AK_CACHE__URL"] = request.getfixturevalue("redis_url")
    platform = start_platform(env, workers=2)
    other = _new_key(platform.env, platform.tenant)  # the tenant's other key keeps working
    for _ in range(3):  # every process has looked the key up, lately
        assert _answers(platform.url, platform.key) == [200] * 16
    _orm(
        platform.env,
        "from django.utils import timezone; from sessions_app.models import ApiKey;"
        f" k = ApiKey.objects.get(key_hash=ApiKey.hash({platform.key!r})); {change}",
    )
    for _ in range(3):
        assert _answers(platform.url, platform.key) == [401] * 16
    assert _answers(platform.url, other) == [200] * 16
