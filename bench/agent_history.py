"""A tool-calling agent's turn as history grows, side by side with Agent Kernel (``history.py --agents``).

One turn of an agent with a tool (``--frameworks``: ``openai_agents``, the default, ``pydantic_ai``,
``smolagents``, or ``crewai`` run from CrewAI's own environment: ``.venv-crewai/bin/python
bench/history.py --agents --frameworks crewai``): the model asks for ``get_weather``, the tool
answers, the model replies (two model calls, a tool call and its result as items; smolagents
replies with its ``final_answer`` tool). Both sides talk
to the same model server (the project's, answering at once, so what grows is what the history
costs) over the same Redis, on sessions that already hold 10, 1,000 and 10,000 items:

- the platform: ``runner.execute`` (lock, load the window, the SDK run, commit the new items);
- Agent Kernel 0.9.5: its ``OpenAIModule`` and ``Runtime.run`` (load the pickled session, run
  the SDK with every item as input, store the whole session again), in its own venv
  (``AKV``, default ``~/.cache/ak-venv-0.9.5``, as ``../shared/bench/agentkernel/`` makes it);
  for ``pydantic_ai`` and ``smolagents`` its ``PydanticAIModule`` or ``SmolagentsModule``
  (``agentkernel_turn_more.py``) in a venv that also has their libraries (``AKV_MORE``, default
  ``~/.cache/ak-venv-0.9.5-pyd``: Agent Kernel's venv's packages plus ``pydantic-ai-slim[openai]``
  and ``smolagents[openai]``); skipped with a note when that venv is missing.

Agent Kernel's CrewAI side (``agentkernel_crewai_turn.py``) runs in a venv of its own
(``AKV_CREWAI``): CrewAI pins ``openai<3``, the Agents SDK of ``AKV`` needs 3.

Medians are printed with their ratio to the smallest session's; the goal is at most 1.2 for the
platform.
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
from django.conf import settings

from agents_app.frameworks import AgentSpec
from agents_app.runner import Runner
from sessions_app.stores import build_store
from sessions_app.stores.base import TOOL_CALL, TOOL_RESULT, Message, SessionKey, SessionStore
from tests.modelserver import ModelServer, Reply

SIZES = (10, 1_000, 10_000)
RUNS = 30
GOAL = 1.2
PROMPT = "What is the weather in Paris?"
AKV = Path(os.environ.get("AKV", Path.home() / ".cache/ak-venv-0.9.5"))
AKV_MORE = Path(os.environ.get("AKV_MORE", Path.home() / ".cache/ak-venv-0.9.5-pyd"))
#: Agent Kernel with CrewAI (which pins openai<3, the Agents SDK of AKV needs openai 3): a venv of its own.
AKV_CREWAI = Path(os.environ.get("AKV_CREWAI", Path.home() / ".cache/ak-venv-0.9.5-crewai"))
#: Agent Kernel's side of each framework: its venv, and its script with the arguments before the common ones.
AK_SIDES = {
    "openai_agents": (AKV, ["agentkernel_turn.py"]),
    "pydantic_ai": (AKV_MORE, ["agentkernel_turn_more.py", "pydantic_ai"]),
    "smolagents": (AKV_MORE, ["agentkernel_turn_more.py", "smolagents"]),
    "crewai": (AKV_CREWAI, ["agentkernel_crewai_turn.py"]),
}
FRAMEWORKS = tuple(AK_SIDES)
HERE = Path(__file__).resolve().parent


def weather_model(body: dict) -> Reply:
    """Ask for the tool first; once its result is in the request, answer with text (a smolagents
    agent, whose tool results come as "Observation:" messages, with its final_answer tool)."""
    last = body["messages"][-1]
    if last.get("role") == "tool":
        return Reply("It is sunny in Paris today.")
    content = last.get("content")
    text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content or [])
    if text.startswith("Observation:"):
        return Reply(tool_calls=[{"name": "final_answer", "arguments": {"answer": "It is sunny in Paris today."}}])
    return Reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])


def prior(n: int, agent: str) -> list[Message]:
    """The entries ``n`` earlier turns of four entries each left (user, call, result, reply)."""
    entries: list[Message] = []
    for turn in range(n // 4 + 1):
        call = f"call_{turn}"
        entries += [
            Message("user", f"user message {turn}: " + "x" * 150, agent),
            Message(
                "assistant",
                'get_weather({"city": "Paris"})',
                agent,
                kind=TOOL_CALL,
                data={"call_id": call, "name": "get_weather", "arguments": '{"city": "Paris"}'},
            ),
            Message("tool", "It is sunny in Paris.", agent, kind=TOOL_RESULT, data={"call_id": call, "output": "x"}),
            Message("assistant", f"assistant message {turn}: " + "y" * 150, agent),
        ]
    return entries[:n]


def seed(store: SessionStore, key: SessionKey, entries: list[Message]) -> None:
    for first in range(0, len(entries), 1_000):
        store.commit(key, expected_version=None, append=entries[first : first + 1_000])


#: The agent each framework runs: a model and the one tool.
CONFIGS = {
    "openai_agents": {},
    "pydantic_ai": {},
    "smolagents": {},
    "crewai": {"role": "Weather reporter", "goal": "Tell the weather", "backstory": "You read forecasts."},
}
#: The tool's function for each framework (``tests.agent_tools`` needs the OpenAI Agents SDK).
TOOL_PATHS = {
    "openai_agents": "tests.agent_tools.get_weather",
    "pydantic_ai": "tests.agent_tools.get_weather",
    "smolagents": "tests.agent_tools.get_weather",
    "crewai": "tests.plain_tools.get_weather",
}


async def platform_turns(
    store: SessionStore, model_url: str, sizes: Sequence[int], runs: int, framework: str = "openai_agents"
) -> dict[int, list]:
    config = {"base_url": model_url, "model": "bench-model", "tools": ["get_weather"], **CONFIGS[framework]}
    agent = AgentSpec("weather", framework, config)
    runner = Runner(store=store)
    tenant = unique_tenant("agentbench")
    keys = {size: SessionKey(tenant, f"agent-{size}") for size in sizes}
    for size, key in keys.items():
        seed(store, key, prior(size, agent.name))
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


def agentkernel_turns(
    model_url: str, redis: str, sizes: Sequence[int], runs: int, log: Log, framework: str = "openai_agents"
) -> dict[int, dict]:
    venv, script = AK_SIDES[framework]
    python = venv / "bin/python"
    if not python.exists():
        how = "see this module's docstring to make it"
        if framework == "crewai":
            how = "python3.12 -m venv it and pip install 'agentkernel[redis,crewai]==0.9.5' there"
        log(f"no Agent Kernel venv at {venv}: {how}")
        return {}
    ak_redis = redis.rsplit("/", 1)[0] + "/3"
    # -P: bench/queue.py must not hide the stdlib's queue
    command = [str(python), "-P", str(HERE / script[0]), *script[1:], model_url]
    command += [ak_redis, ",".join(map(str, sizes)), str(runs)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=3600, cwd=HERE.parent)
    if done.returncode != 0:
        log(f"Agent Kernel's side failed: {done.stderr[-2000:]}")
        return {}
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {r["size"]: r for r in results}


def run(
    sizes: Sequence[int] = SIZES, runs: int = RUNS, log: Log | None = None, framework: str = "openai_agents"
) -> int:
    log = log or Log(False)
    settings.AK_AGENTS["TOOLS"].setdefault("get_weather", TOOL_PATHS[framework])
    with ModelServer() as model, redis_url(log) as redis:
        model.reply_with(weather_model)
        store = build_store("redis", ttl=3600, url=redis)
        log(f"platform: {runs} tool-calling turns per size on sessions of {', '.join(f'{s:,}' for s in sizes)} items")
        ours = asyncio.run(platform_turns(store, model.url, sizes, runs, framework))
        log("Agent Kernel: the same turns")
        theirs = agentkernel_turns(model.url, redis, sizes, runs, log, framework)
        store.close()
    rows = []
    base = median(ours[sizes[0]])
    ak_base = median(theirs[sizes[0]]["samples_ms"]) if theirs else 0
    ak_store_base = median(theirs[sizes[0]]["store_ms"]) if theirs else 0
    for size in sizes:
        row = [f"{size:,}", f"{median(ours[size]):.1f}", f"{median(ours[size]) / base:.2f}"]
        if theirs:
            ak = theirs[size]
            row += [
                f"{median(ak['samples_ms']):.1f}",
                f"{median(ak['samples_ms']) / ak_base:.2f}",
                f"{median(ak['store_ms']):.1f}",
                f"{median(ak['store_ms']) / ak_store_base:.2f}",
                f"{ak['pickle_bytes']:,}",
            ]
        rows.append(row)
    headers = ["prior items", "platform ms", "ratio"]
    if theirs:
        headers += ["Agent Kernel ms", "ratio", "its load+store ms", "ratio", "its pickle bytes"]
    print(f"a tool-calling {framework} turn (2 model calls, a tool) on the Redis store, median of", runs)
    print("")
    print(table(headers, rows))
    worst = max(median(ours[s]) / base for s in sizes)
    print("")
    print(f"platform: {'flat' if worst <= GOAL else 'NOT flat'}: max ratio {worst:.2f} (goal <= {GOAL})")
    return 0
