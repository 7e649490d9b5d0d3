"""Usage on the platform as deployed (gunicorn, a Celery worker, Redis): runs of two agents on two
models, sync and through the worker, against the project's model server, add up exactly in
``GET /usage`` in every grouping, priced by the operators' table; another tenant sees only its own."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.live.queue import Queue
from tests.live.servers import manage
from tests.modelserver import ModelServer

pytestmark = pytest.mark.slow

TAG = uuid.uuid4().hex[:6]  # the price table is the deployment's: this test's models are its own
SMALL, LARGE = f"small-{TAG}", f"large-{TAG}"
PRICES = {SMALL: (Decimal("0.15"), Decimal("0.60")), LARGE: (Decimal("2.50"), Decimal("10.00"))}
#: (agent, session, prompt tokens, completion tokens, through the worker)
RUNS = [
    ("writer", "s-1", 120, 30, False),
    ("writer", "s-1", 150, 35, True),
    ("critic", "s-1", 400, 90, True),
    ("critic", "s-2", 380, 70, False),
    ("writer", "s-2", 110, 25, True),
]
MODELS = {"writer": SMALL, "critic": LARGE}

SET_PRICES = """
from agents_app.models import ModelPrice
for model, prompt, completion in {prices!r}:
    ModelPrice.objects.create(model=model, prompt_per_million=prompt, completion_per_million=completion)
"""


def cost(model: str, prompt: int, completion: int) -> Decimal:
    prompt_price, completion_price = PRICES[model]
    return (prompt * prompt_price + completion * completion_price) / 1_000_000


def expected(group_by: str) -> dict[str, dict]:
    today = datetime.now(UTC).date().isoformat()
    groups: dict[str, dict] = {}
    for agent, session, prompt, completion, _ in RUNS:
        key = {"day": today, "agent": agent, "session": session, "model": MODELS[agent]}[group_by]
        group = groups.setdefault(key, {"runs": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost": Decimal(0)})
        group["runs"] += 1
        group["prompt_tokens"] += prompt
        group["completion_tokens"] += completion
        group["cost"] += cost(MODELS[agent], prompt, completion)
    # The failed run (writer on s-2): counted, no tokens.
    key = {"day": today, "agent": "writer", "session": "s-2", "model": SMALL}[group_by]
    groups[key]["runs"] += 1
    return groups


def test_usage_adds_up_exactly_on_the_deployed_platform(start_queue, model_server: ModelServer) -> None:
    queue: Queue = start_queue("redis", workers=1)
    other_key = manage(queue.platform.env, "create_tenant", f"other-{TAG}").strip().splitlines()[-1]
    other = Queue(replace(queue.platform, key=other_key), {}, queue.invocations, queue.tmp)  # same platform
    prices = [(model, str(prompt), str(completion)) for model, (prompt, completion) in PRICES.items()]
    manage(queue.platform.env, "shell", "-c", SET_PRICES.format(prices=prices))
    for name, model in MODELS.items():
        config = {"base_url": model_server.url, "model": model}
        answer = queue.post("/agents", {"name": name, "framework": "openai_chat", "config": config})
        assert answer.status_code == 201, answer.text
    for agent, session, prompt, completion, through_worker in RUNS:
        model_server.reply(f"{agent} here", usage=(prompt, completion))
        if through_worker:
            run = queue.finished(queue.enqueue(agent, "hello", session)["run_id"])
        else:
            answer = queue.post("/run", {"agent": agent, "message": "hello", "session_id": session})
            assert answer.status_code == 200, answer.text
            run = queue.run(answer.json()["run_id"])
        assert run["status"] == "succeeded" and run["usage"] == {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
        }
    model_server.fail(500)
    assert queue.finished(queue.enqueue("writer", "and now?", "s-2")["run_id"])["status"] == "failed"
    assert other.post("/run", {"agent": "echo", "message": "hi", "session_id": "s-1"}).status_code == 200

    for group_by in ("day", "agent", "session", "model"):
        body = queue.get("/usage", group_by=group_by).json()
        want = expected(group_by)
        assert [item["key"] for item in body["items"]] == sorted(want), group_by
        for item in body["items"]:
            group = want[item["key"]]
            assert (item["runs"], item["prompt_tokens"], item["completion_tokens"]) == (
                group["runs"], group["prompt_tokens"], group["completion_tokens"],
            ), (group_by, item)  # fmt: skip
            assert Decimal(str(item["cost"])) == group["cost"], (group_by, item)
        total = body["total"]
        assert (total["runs"], total["succeeded"], total["failed"]) == (6, 5, 1)
        assert (total["prompt_tokens"], total["completion_tokens"]) == (1160, 250)
        assert Decimal(str(total["cost"])) == sum(cost(MODELS[a], p, c) for a, _, p, c, _ in RUNS)

    theirs = other.get("/usage", group_by="session").json()
    assert [(item["key"], item["runs"], item["prompt_tokens"]) for item in theirs["items"]] == [("s-1", 1, 0)]
    assert other.get("/usage", group_by="week").status_code == 400
