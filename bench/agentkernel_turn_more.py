"""Agent Kernel's side of ``bench/history.py --agents --framework pydantic_ai|smolagents``: run with
the Python of an Agent Kernel 0.9.5 venv that has the framework's library (``AKV_MORE``, default
``~/.cache/ak-venv-0.9.5-pyd``: Agent Kernel's venv plus pydantic-ai-slim[openai] and smolagents[openai]).

One tool-calling turn as Agent Kernel runs it (its ``PydanticAIModule`` or ``SmolagentsModule`` and
``Runtime.run``: load the session from Redis, run, store the session), on sessions that already hold
N items (its own form of them: PydanticAI's JSON messages, smolagents' memory steps), against the
same model server as the platform's. Prints one JSON line per size, as ``agentkernel_turn.py`` does.

    $AKV_MORE/bin/python -P bench/agentkernel_turn_more.py FRAMEWORK MODEL_URL REDIS_URL SIZES RUNS
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from typing import Any

PROMPT = "What is the weather in Paris?"


def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city's name.
    """
    return f"It is sunny in {city}."


def pydantic_ai_side(model_url: str) -> tuple[Any, str, Any]:
    """The module's agent, the session key Agent Kernel keeps its history under, and a seeder."""
    from agentkernel.framework.pydanticai.pydanticai import PydanticAISession
    from agentkernel.pydanticai import PydanticAIModule
    from openai import AsyncOpenAI
    from pydantic_ai import Agent
    from pydantic_ai.messages import (
        ModelMessagesTypeAdapter,
        ModelRequest,
        ModelResponse,
        TextPart,
        ToolCallPart,
        ToolReturnPart,
        UserPromptPart,
    )
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    client = AsyncOpenAI(base_url=model_url, api_key="unused", max_retries=0)
    model = OpenAIChatModel("bench-model", provider=OpenAIProvider(openai_client=client))
    agent = Agent(model, name="weather", instructions="Answer about the weather.", tools=[get_weather])
    PydanticAIModule([agent])

    def seeded(n: int) -> Any:
        messages: list[Any] = []
        for turn in range(n // 4 + 1):
            call = f"call_{turn}"
            messages += [
                ModelRequest(parts=[UserPromptPart(f"user message {turn}: " + "x" * 150)]),
                ModelResponse(parts=[ToolCallPart("get_weather", '{"city": "Paris"}', call)]),
                ModelRequest(parts=[ToolReturnPart("get_weather", "It is sunny in Paris.", call)]),
                ModelResponse(parts=[TextPart(f"assistant message {turn}: " + "y" * 150)]),
            ]
        memory = PydanticAISession()
        memory.messages = ModelMessagesTypeAdapter.dump_python(messages[:n], mode="json")
        return memory

    return agent, "pydanticai", seeded


def smolagents_side(model_url: str) -> tuple[Any, str, Any]:
    from agentkernel.framework.smolagents.smolagents import SmolagentsSession
    from agentkernel.smolagents import SmolagentsModule
    from smolagents import OpenAIModel, ToolCallingAgent, tool
    from smolagents.memory import ActionStep, TaskStep, ToolCall
    from smolagents.monitoring import LogLevel, Timing

    model = OpenAIModel(model_id="bench-model", api_base=model_url, api_key="unused", retry=False)
    agent = ToolCallingAgent(
        tools=[tool(get_weather)], model=model, name="weather", verbosity_level=LogLevel.OFF, max_steps=10
    )
    SmolagentsModule([agent])

    def seeded(n: int) -> Any:
        steps: list[Any] = []
        for turn in range(n // 4 + 1):
            steps += [
                TaskStep(task=f"user message {turn}: " + "x" * 150),
                ActionStep(
                    step_number=1,
                    timing=Timing(start_time=0.0),
                    tool_calls=[ToolCall("get_weather", {"city": "Paris"}, f"call_{turn}")],
                    observations="It is sunny in Paris.",
                ),
                ActionStep(
                    step_number=2,
                    timing=Timing(start_time=0.0),
                    tool_calls=[ToolCall("final_answer", {"answer": "y" * 150}, f"final_{turn}")],
                    action_output=f"assistant message {turn}: " + "y" * 150,
                    is_final_answer=True,
                ),
            ]
        memory = SmolagentsSession()
        memory.add_items(steps[: max(n * 3 // 4, 0)])  # three steps stand for four items
        return memory

    return agent, "smolagents", seeded


def main() -> None:
    framework, model_url, redis_url = sys.argv[1], sys.argv[2], sys.argv[3]
    sizes, runs = [int(s) for s in sys.argv[4].split(",")], int(sys.argv[5])
    os.environ.update(AK_SESSION__TYPE="redis", AK_SESSION__REDIS__URL=redis_url, AK_LOGGING__AK__LEVEL="ERROR")

    from agentkernel.core.model import AgentRequestText
    from agentkernel.core.runtime import GlobalRuntime
    from agentkernel.core.session.serde import BinarySerde

    _, key, seeded = (pydantic_ai_side if framework == "pydantic_ai" else smolagents_side)(model_url)
    runtime = GlobalRuntime.instance()
    ak_agent = runtime.agents()["weather"]
    store = runtime.sessions()

    async def one_turn(session_id: str) -> tuple[float, float]:
        started = time.perf_counter()
        session = store.load(session_id)
        loaded = time.perf_counter()
        await runtime.run(ak_agent, session, [AgentRequestText(prompt=PROMPT)])
        ended = time.perf_counter()
        store.store(session)
        stored = time.perf_counter() - ended
        return (ended - started) * 1000, ((loaded - started) + stored) * 1000

    async def bench() -> None:
        ids = {}
        for size in sizes:
            session_id = f"akb-{uuid.uuid4().hex[:8]}-{size}"
            session = store.new(session_id)
            session.set(key, seeded(size))
            store.store(session)
            ids[size] = session_id
            await one_turn(session_id)  # warm-up
        results: dict[int, tuple[list[float], list[float]]] = {size: ([], []) for size in sizes}
        for _ in range(runs):
            for size in sizes:
                whole, store_ms = await one_turn(ids[size])
                results[size][0].append(whole)
                results[size][1].append(store_ms)
        for size in sizes:
            pickled = len(BinarySerde().dumps(store.load(ids[size]).get(key)))
            whole, store_ms = results[size]
            print(json.dumps({"size": size, "samples_ms": whole, "store_ms": store_ms, "pickle_bytes": pickled}))

    asyncio.run(bench())


if __name__ == "__main__":
    main()
