"""Encryption at rest as deployed: gunicorn with ``AK_SESSION__ENCRYPTION_KEY`` over a real Redis and
moto's DynamoDB. Runs (sync and streamed) read and answer as ever, and neither Redis (``SCAN``, then
every key read by its type) nor DynamoDB (a ``Scan`` of the table) holds a word of them in clear."""

from __future__ import annotations

import uuid

import boto3
import pytest
import redis
import requests

KEY = "live-encryption-key-of-at-least-32-characters"


def converse(url: str, api_key: str, session_id: str, word: str) -> list[str]:
    """A sync run, a streamed one, then the history: what the API gives back."""
    headers = {"Authorization": f"Bearer {api_key}"}
    body = {"agent": "echo", "message": f"{word} one", "session_id": session_id}
    assert requests.post(f"{url}/run", json=body, headers=headers, timeout=60).json()["result"] == (
        f"echo[turns=1]: {word} one"
    )
    streamed = requests.post(
        f"{url}/run", json={**body, "message": f"{word} two", "stream": True}, headers=headers, timeout=60
    )
    assert streamed.status_code == 200 and f"{word} two" in streamed.text  # the deltas, through the event log
    page = requests.get(f"{url}/sessions/{session_id}/messages", headers=headers, timeout=60).json()
    return [m["content"] for m in page["messages"]]


def expected(word: str) -> list[str]:
    return [f"{word} one", f"echo[turns=1]: {word} one", f"{word} two", f"echo[turns=2]: {word} two"]


@pytest.mark.slow
def test_redis_holds_no_word_of_a_conversation_in_clear(start_platform, redis_url) -> None:
    platform = start_platform(
        {"AK_SESSION__TYPE": "redis", "AK_SESSION__REDIS__URL": redis_url, "AK_SESSION__ENCRYPTION_KEY": KEY},
        workers=1,
    )
    word = f"quince{uuid.uuid4().hex[:8]}"
    assert converse(platform.url, platform.key, "sealed", word) == expected(word)

    client = redis.Redis.from_url(redis_url)
    held: list[bytes] = []
    for name in client.scan_iter(match=f"ak:{{{platform.tenant}:*"):
        kind = client.type(name)
        if kind == b"list":
            held.extend(client.lrange(name, 0, -1))
        elif kind == b"hash":
            held.extend(v for pair in client.hgetall(name).items() for v in pair)
        elif kind == b"stream":
            held.extend(v for _, fields in client.xrange(name) for v in fields.values())
        elif kind == b"set":
            held.extend(client.smembers(name))
        elif kind == b"string":
            held.append(client.get(name))
    assert any(value.startswith(b"~2") for value in held), "no sealed payload found: wrong tenant prefix?"
    assert not [value for value in held if word.encode() in value]


@pytest.mark.slow
def test_dynamodb_holds_no_word_of_a_conversation_in_clear(start_platform, dynamodb_url) -> None:
    table = "ak-live-sealed"
    platform = start_platform(
        {
            "AK_SESSION__TYPE": "dynamodb",
            "AK_SESSION__DYNAMODB__ENDPOINT_URL": dynamodb_url,
            "AK_SESSION__DYNAMODB__TABLE_NAME": table,
            "AK_SESSION__ENCRYPTION_KEY": KEY,
        },
        workers=1,
    )
    word = f"medlar{uuid.uuid4().hex[:8]}"
    assert converse(platform.url, platform.key, "sealed", word) == expected(word)

    client = boto3.client("dynamodb", endpoint_url=dynamodb_url, region_name="us-east-1")
    items = [
        item
        for page in client.get_paginator("scan").paginate(TableName=table)
        for item in page["Items"]
        if item["pk"]["S"].startswith(f"{platform.tenant}#")
    ]
    assert any(item.get("d", {}).get("S", "").startswith("~1") for item in items)
    assert not [item for item in items if word in repr(item)]
