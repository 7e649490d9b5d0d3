"""20 concurrent POST /run on one session through gunicorn with 2 worker processes.

Agent Kernel's Redis store loses most of these messages; here every turn is seen exactly once.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.live.servers import Platform

RUNS = 20


def post_runs(platform: Platform, session_id: str, count: int) -> list[dict]:
    def one(i: int) -> dict:
        response = requests.post(
            f"{platform.url}/run",
            json={"agent": "echo", "message": f"msg-{i}", "session_id": session_id},
            headers={"Authorization": f"Bearer {platform.key}"},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def all_messages(platform: Platform, session_id: str) -> list[dict]:
    messages, cursor = [], None
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        body = requests.get(
            f"{platform.url}/sessions/{session_id}/messages",
            params=params,
            headers={"Authorization": f"Bearer {platform.key}"},
            timeout=30,
        ).json()
        messages += body["messages"]
        cursor = body["next"]
        if cursor is None:
            return messages


@pytest.fixture(params=["redis", "dynamodb"])
def platform(request, start_platform, redis_url) -> Platform:
    if request.param == "redis":
        env = {"AK_SESSION__TYPE": "redis", "AK_SESSION__REDIS__URL": redis_url}
    else:
        env = {
            "AK_SESSION__TYPE": "dynamodb",
            "AK_SESSION__DYNAMODB__ENDPOINT_URL": request.getfixturevalue("dynamodb_url"),
            "AK_SESSION__DYNAMODB__TABLE_NAME": f"live-{uuid.uuid4().hex[:8]}",
        }
    return start_platform(env)


@pytest.mark.slow
def test_twenty_concurrent_runs_keep_every_message(platform: Platform) -> None:
    session_id = f"crowd-{uuid.uuid4().hex[:8]}"
    replies = post_runs(platform, session_id, RUNS)
    turns = sorted(int(r["result"].split("]")[0].split("=")[1]) for r in replies)
    assert turns == list(range(1, RUNS + 1))
    messages = all_messages(platform, session_id)
    assert len(messages) == 2 * RUNS
    assert sorted(m["content"] for m in messages if m["role"] == "user") == sorted(f"msg-{i}" for i in range(RUNS))
    # The log is in commit order: each reply follows its own question and counts one more turn.
    for turn, (question, answer) in enumerate(zip(messages[::2], messages[1::2], strict=True), start=1):
        assert answer["content"] == f"echo[turns={turn}]: {question['content']}"
