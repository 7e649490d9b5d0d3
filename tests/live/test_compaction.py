"""A long session compacted through the deployed platform: gunicorn answers the runs, the Celery
worker compacts the session, the Redis store keeps it, the project's model server is the model
(and the summariser). Its model is sent the latest summary and the recent window, and the whole
history stays readable, page by page."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from agents_app.compaction.summarise import INSTRUCTIONS
from agents_app.compaction.window import SUMMARY_HEADING
from tests.live.queue import Queue
from tests.modelserver import ModelServer, Reply

pytestmark = pytest.mark.slow

TURNS = 300
AFTER, KEEP, HISTORY = 40, 10, 50


def summarise(body: dict) -> Reply | None:
    """The summariser's answer names the last turn it was shown; other requests get the default."""
    asked = body["messages"][-1]["content"]
    if not asked.startswith(INSTRUCTIONS):
        return None
    last = re.findall(r"^user: turn (\d+)$", asked, re.MULTILINE)[-1]
    return Reply(f"Turns up to {last} summarised.")


def history(queue: Queue, session_id: str) -> list[dict]:
    """The whole history, read a page of 100 at a time."""
    entries: list[dict] = []
    cursor = None
    while True:
        page = queue.get(f"/sessions/{session_id}/messages", limit=100, **({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.text
        entries += page.json()["messages"]
        cursor = page.json()["next"]
        if cursor is None:
            return entries


def settled(queue: Queue, session_id: str, timeout: float = 60) -> list[dict]:
    """The history once the worker has caught up: the latest summary leaves ``AFTER`` entries or
    fewer uncovered."""
    deadline = time.monotonic() + timeout
    while True:
        entries = history(queue, session_id)
        at = max((n for n, e in enumerate(entries) if e.get("kind") == "summary"), default=None)
        if at is not None and len(entries) - entries[at]["data"]["covers"] - 1 <= AFTER:
            return entries
        assert time.monotonic() < deadline, f"no compaction caught up with {len(entries)} entries"
        time.sleep(0.2)


def test_a_300_turn_session_is_compacted_and_its_model_sent_the_summary_and_the_recent_window(
    start_queue, model_server: ModelServer
) -> None:
    queue = start_queue("redis", workers=1)
    model = {"base_url": model_server.url, "model": "m1"}
    for name, config in (
        ("summariser", model),
        ("gpt", {**model, "history": HISTORY, "compaction": {"after": AFTER, "keep": KEEP, "agent": "summariser"}}),
    ):
        made = queue.post("/agents", {"name": name, "framework": "openai_chat", "config": config})
        assert made.status_code == 201, made.text
    model_server.reply_with(summarise)
    session_id = f"long-{uuid.uuid4().hex[:6]}"
    for turn in range(1, TURNS + 1):
        answer = queue.post("/run", {"agent": "gpt", "message": f"turn {turn}", "session_id": session_id})
        assert answer.status_code == 200, answer.text

    entries = settled(queue, session_id)
    at = max(n for n, e in enumerate(entries) if e.get("kind") == "summary")
    latest = entries[at]
    covers = latest["data"]["covers"]
    answer = queue.post("/run", {"agent": "gpt", "message": "one more", "session_id": session_id})
    assert answer.status_code == 200, answer.text

    # This run lifts the uncovered entries past AFTER, so the worker may already be compacting
    # again: its summariser request can come after the run's own, which is the one that ends
    # with "one more".
    sent = next(
        r.body["messages"]
        for r in reversed(model_server.requests)
        if r.body.get("messages", [{}])[-1].get("content") == "one more"
    )
    assert sent[0] == {"role": "user", "content": f"{SUMMARY_HEADING}\n{latest['content']}"}
    recent = [e for e in entries[covers:] if e.get("kind") is None]
    assert sent[1:] == [{"role": e["role"], "content": e["content"]} for e in recent] + [
        {"role": "user", "content": "one more"}
    ]
    assert len(recent) <= AFTER  # the recent window only: nothing the summary covers
    first_kept = int(recent[0]["content"].split()[-1])
    assert latest["content"] == f"Turns up to {first_kept - 1} summarised."

    whole = history(queue, session_id)
    users = [e["content"] for e in whole if e["role"] == "user" and e.get("kind") is None]
    assert users == [f"turn {n}" for n in range(1, TURNS + 1)] + ["one more"]
    summaries = [e for e in whole if e.get("kind") == "summary"]
    assert len(summaries) >= 2  # compacted again and again, each summary from the one before
    assert all(e["role"] == "system" and e["agent"] == "summariser" for e in summaries)
