"""A tool-calling ``google_adk`` turn as history grows, beside Agent Kernel's (``history.py --agents``).

The turn of ``agent_history.py``, by a ``google_adk`` agent: the model asks for ``get_weather``,
the tool answers, the model replies. Both sides talk to the same model server over the same
Redis, on sessions that already hold 10, 1,000 and 10,000 items:

- the platform: ``runner.execute``; the session holds the items, and the agent's own state the ADK
  events its ``history`` keeps (the latest 20, as the adapter leaves them);
- Agent Kernel 0.9.5: its ``GoogleADKModule`` and ``Runtime.run`` (the whole ADK session, every
  event, pickled in the session), in its own venv (``AKV_ADK``, default
  ``~/.cache/ak-venv-0.9.5-adk``: ``pip install 'agentkernel[redis,adk]==0.9.5' openai``);
  skipped with a note when that venv is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from _common import Log, median, redis_url, table, unique_tenant
from agent_history import GOAL, PROMPT, prior, seed, weather_model
from django.conf import settings

from agents_app.frameworks import AgentSpec
from agents_app.frameworks.google_adk_session import ADK_KEY
from agents_app.runner import Runner
from sessions_app.stores import build_store
from sessions_app.stores.base import SessionKey, SessionStore
from tests.modelserver import ModelServer

AKV_ADK = Path(os.environ.get("AKV_ADK", Path.home() / ".cache/ak-venv-0.9.5-adk"))
HERE = Path(__file__).resolve().parent
#: The ADK events the agent keeps (its ``history``, the default).
KEPT = 20


def adk_events(n: int, agent: str) -> list[dict]:
    """ADK's events (as the adapter stores them) for the latest whole turns of ``n`` earlier items,
    four a turn."""
    from google.adk.events.event import Event
    from google.genai import types

    events: list[Event] = []
    for turn in range(n // 4):
        call = f"call_{turn}"
        asked = types.FunctionCall(id=call, name="get_weather", args={"city": "P"})
        events += [
            Event(author="user", content=types.Content(role="user", parts=[types.Part(text=f"user message {turn}")])),
            Event(author=agent, content=types.Content(role="model", parts=[types.Part(function_call=asked)])),
            Event(
                author=agent,
                content=types.Content(
                    role="user",
                    parts=[
                        types.Part(
                            function_response=types.FunctionResponse(
                                id=call, name="get_weather", response={"result": "It is sunny in Paris."}
                            )
                        )
                    ],
                ),
            ),
            Event(author=agent, content=types.Content(role="model", parts=[types.Part(text="y" * 150)])),
        ]
    kept = events[-KEPT:]
    while kept and kept[0].author != "user":
        kept.pop(0)
    return [e.model_dump(mode="json", exclude_none=True, by_alias=True) for e in kept]


async def platform_turns(store: SessionStore, model_url: str, sizes: Sequence[int], runs: int) -> dict[int, list]:
    config = {"base_url": model_url, "model": "bench-model", "tools": ["get_weather"], "history": KEPT}
    agent = AgentSpec("weather", "google_adk", config)
    runner = Runner(store=store)
    tenant = unique_tenant("adkbench")
    keys = {size: SessionKey(tenant, f"adk-{size}") for size in sizes}
    for size, key in keys.items():
        seed(store, key, prior(size, agent.name))
        state = {"events": adk_events(size, "agent_weather"), "state": {}}
        store.commit(key, expected_version=None, state={agent.name: {ADK_KEY: state}})
        await runner.execute(agent, key, PROMPT)  # warm-up
    samples: dict[int, list[float]] = {size: [] for size in sizes}
    order = list(sizes)
    for _ in range(runs):
        random.shuffle(order)
        for size in order:
            started = time.perf_counter()
            outcome = await runner.execute(agent, keys[size], PROMPT)
            samples[size].append((time.perf_counter() - started) * 1000)
            assert outcome.reply == "It is sunny in Paris today.", outcome.reply
    for key in keys.values():
        store.delete(key)
    return samples


def agentkernel_turns(model_url: str, redis: str, sizes: Sequence[int], runs: int, log: Log) -> dict[int, dict]:
    python = AKV_ADK / "bin/python"
    if not python.exists():
        log(f"no Agent Kernel venv with ADK at {AKV_ADK}: pip install 'agentkernel[redis,adk]==0.9.5' openai there")
        return {}
    ak_redis = redis.rsplit("/", 1)[0] + "/3"
    script = str(HERE / "agentkernel_adk_turn.py")  # -P: bench/queue.py must not hide the stdlib's queue
    command = [str(python), "-P", script, model_url, ak_redis, ",".join(map(str, sizes)), str(runs)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=3600, cwd=HERE.parent)
    if done.returncode != 0:
        log(f"Agent Kernel's side failed: {done.stderr[-2000:]}")
        return {}
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {r["size"]: r for r in results}


def run(sizes: Sequence[int], runs: int, log: Log | None = None) -> int:
    log = log or Log(False)
    settings.AK_AGENTS["TOOLS"].setdefault("get_weather", "tests.agent_tools.get_weather")
    with ModelServer() as model, redis_url(log) as redis:
        model.reply_with(weather_model)
        store = build_store("redis", ttl=3600, url=redis)
        log(f"platform: {runs} tool-calling google_adk turns per size on {', '.join(f'{s:,}' for s in sizes)} items")
        ours = asyncio.run(platform_turns(store, model.url, sizes, runs))
        log("Agent Kernel: the same turns")
        theirs = agentkernel_turns(model.url, redis, sizes, runs, log)
        store.close()
    base = median(ours[sizes[0]])
    ak_base = median(theirs[sizes[0]]["samples_ms"]) if theirs else 0
    rows = []
    for size in sizes:
        row = [f"{size:,}", f"{median(ours[size]):.1f}", f"{median(ours[size]) / base:.2f}"]
        if theirs:
            ak = theirs[size]
            row += [f"{median(ak['samples_ms']):.1f}", f"{median(ak['samples_ms']) / ak_base:.2f}"]
            row += [f"{ak['pickle_bytes']:,}"]
        rows.append(row)
    headers = ["prior items", "platform ms", "ratio"]
    if theirs:
        headers += ["Agent Kernel ms", "ratio", "its pickle bytes"]
    print("")
    print("a tool-calling google_adk turn (2 model calls, a tool) on the Redis store, median of", runs)
    print("")
    print(table(headers, rows))
    worst = max(median(ours[s]) / base for s in sizes)
    print("")
    print(f"platform: {'flat' if worst <= GOAL else 'NOT flat'}: max ratio {worst:.2f} (goal <= {GOAL})")
    return 0
