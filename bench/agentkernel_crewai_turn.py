"""Agent Kernel's side of ``bench/history.py --agents --frameworks crewai``: run with a Python 3.12
venv holding ``agentkernel[redis,crewai]==0.9.5`` (``AKV_CREWAI``, default
``~/.cache/ak-venv-0.9.5-crewai``).

One tool-calling turn of a CrewAI agent as Agent Kernel runs it (its ``CrewAIModule`` and
``Runtime.run``: load the session from Redis, run the crew, store the session), on sessions that
already hold N items, against the same model server as the platform's. Agent Kernel keeps a CrewAI
conversation as a transcript (its last 20 lines) and as CrewAI memory records (``CrewAISession``,
one a remembered prompt, pickled with the session); the N prior items are seeded as N memory
records, without embeddings (with no embedding model, as here, ``remember`` fails and the run goes
on without memory: the records are carried, never searched). Prints one JSON line per size:
``{"size", "samples_ms", "store_ms", "pickle_bytes"}``.

    ~/.cache/ak-venv-0.9.5-crewai/bin/python -P bench/agentkernel_crewai_turn.py MODEL_URL REDIS_URL SIZES RUNS
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid


def main() -> None:
    model_url, redis_url = sys.argv[1], sys.argv[2]
    sizes, runs = [int(s) for s in sys.argv[3].split(",")], int(sys.argv[4])
    os.environ.update(AK_SESSION__TYPE="redis", AK_SESSION__REDIS__URL=redis_url, AK_LOGGING__AK__LEVEL="ERROR")
    os.environ.update(CREWAI_DISABLE_TELEMETRY="true", CREWAI_DISABLE_TRACKING="true", CREWAI_TRACING_ENABLED="false")

    from agentkernel.core.model import AgentRequestText
    from agentkernel.core.runtime import GlobalRuntime
    from agentkernel.crewai import CrewAIModule
    from agentkernel.framework.crewai.crewai import FRAMEWORK, CrewAIRunner, CrewAISession
    from crewai import LLM, Agent
    from crewai.memory import MemoryRecord
    from crewai.tools import tool

    @tool("get_weather")
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"It is sunny in {city}."

    llm = LLM(model="bench-model", custom_openai=True, base_url=model_url, api_key="unused", max_retries=0)
    agent = Agent(
        role="weather", goal="Tell the weather", backstory="You read forecasts.", llm=llm, tools=[get_weather]
    )
    CrewAIModule([agent])
    runtime = GlobalRuntime.instance()
    ak_agent = runtime.agents()["weather"]
    store = runtime.sessions()

    def prior(n: int) -> CrewAISession:
        """The memory records ``n`` earlier items left, as its adapter keeps them."""
        memory = CrewAISession()
        memory._items = [MemoryRecord(content=f"user message {i}: " + "x" * 150) for i in range(n)]
        return memory

    async def one_turn(session_id: str) -> tuple[float, float]:
        started = time.perf_counter()
        session = store.load(session_id)
        loaded = time.perf_counter()
        reply = await runtime.run(ak_agent, session, [AgentRequestText(prompt="What is the weather in Paris?")])
        ended = time.perf_counter()
        assert "sunny" in str(reply), reply
        store.store(session)  # what the runtime did at its end, timed alone
        stored = time.perf_counter() - ended
        return (ended - started) * 1000, ((loaded - started) + stored) * 1000

    async def bench() -> None:
        ids = {}
        for size in sizes:
            session_id = f"akc-{uuid.uuid4().hex[:8]}-{size}"
            session = store.new(session_id)
            session.set(FRAMEWORK, prior(size))
            lines = [f"User: question {i}" if i % 2 == 0 else f"Assistant: answer {i}" for i in range(20)]
            session.set(CrewAIRunner.TRANSCRIPT_KEY, lines[: min(size, CrewAIRunner.TRANSCRIPT_MAX_LINES)])
            store.store(session)
            ids[size] = session_id
            await one_turn(session_id)  # warm-up
        results = {size: ([], []) for size in sizes}
        for _ in range(runs):
            for size in sizes:
                whole, store_ms = await one_turn(ids[size])
                results[size][0].append(whole)
                results[size][1].append(store_ms)
        from agentkernel.core.session.serde import BinarySerde

        for size in sizes:
            pickled = len(BinarySerde().dumps(store.load(ids[size]).get(FRAMEWORK)))
            whole, store_ms = results[size]
            print(json.dumps({"size": size, "samples_ms": whole, "store_ms": store_ms, "pickle_bytes": pickled}))

    asyncio.run(bench())


if __name__ == "__main__":
    main()
