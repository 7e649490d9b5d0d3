"""Agent Kernel's side of ``bench/history.py --agents``: run with Agent Kernel's Python (3.12).

One tool-calling turn of an OpenAI Agents SDK agent, as Agent Kernel runs it (its ``OpenAIModule``
and ``Runtime.run``: load the session from Redis, run, store the session), on sessions that already
hold N items, against the same model server as the platform's. Prints one JSON line per size:
``{"size", "samples_ms", "store_ms", "pickle_bytes"}`` (``store_ms``: the session's load and store
alone, timed around the same calls the runtime makes).

    ~/.cache/ak-venv-0.9.5/bin/python -P bench/agentkernel_turn.py MODEL_URL REDIS_URL SIZES RUNS
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

    from agentkernel.core.model import AgentRequestText
    from agentkernel.core.runtime import GlobalRuntime
    from agentkernel.framework.openai.openai import OpenAISession
    from agentkernel.openai import OpenAIModule
    from agents import Agent, OpenAIChatCompletionsModel, function_tool, set_tracing_disabled
    from openai import AsyncOpenAI

    set_tracing_disabled(True)

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"It is sunny in {city}."

    client = AsyncOpenAI(base_url=model_url, api_key="unused", max_retries=0)
    agent = Agent(
        name="weather",
        instructions="Answer about the weather.",
        model=OpenAIChatCompletionsModel(model="bench-model", openai_client=client),
        tools=[get_weather],
    )
    OpenAIModule([agent])
    runtime = GlobalRuntime.instance()
    ak_agent = runtime.agents()["weather"]
    store = runtime.sessions()

    def prior(n: int) -> list[dict]:
        """The SDK items ``n`` earlier turns of four items each left."""
        items: list[dict] = []
        for turn in range(n // 4 + 1):
            call = f"call_{turn}"
            items += [
                {"role": "user", "content": f"user message {turn}: " + "x" * 150},
                {"type": "function_call", "call_id": call, "name": "get_weather", "arguments": '{"city": "Paris"}'},
                {"type": "function_call_output", "call_id": call, "output": "It is sunny in Paris."},
                {"role": "assistant", "content": f"assistant message {turn}: " + "y" * 150},
            ]
        return items[:n]

    async def one_turn(session_id: str) -> tuple[float, float]:
        started = time.perf_counter()
        session = store.load(session_id)
        loaded = time.perf_counter()
        await runtime.run(ak_agent, session, [AgentRequestText(prompt="What is the weather in Paris?")])
        ended = time.perf_counter()
        store.store(session)  # what the runtime did at its end, timed alone
        stored = time.perf_counter() - ended
        return (ended - started) * 1000, ((loaded - started) + stored) * 1000

    async def bench() -> None:
        ids = {}
        for size in sizes:
            session_id = f"akb-{uuid.uuid4().hex[:8]}-{size}"
            session = store.new(session_id)
            memory = OpenAISession()
            memory._items = prior(size)  # the seeded history, as its adapter keeps it
            session.set("openai", memory)
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
            pickled = len(BinarySerde().dumps(store.load(ids[size]).get("openai")))
            whole, store_ms = results[size]
            print(json.dumps({"size": size, "samples_ms": whole, "store_ms": store_ms, "pickle_bytes": pickled}))

    asyncio.run(bench())


if __name__ == "__main__":
    main()
