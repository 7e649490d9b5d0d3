"""Agent Kernel's side of ``bench/adk_history.py``: run with Agent Kernel's Python and ADK.

One tool-calling turn of a Google ADK agent as Agent Kernel runs it (its ``GoogleADKModule`` and
``Runtime.run``: load the session from Redis, run, store the session, the ADK session whole in it),
on sessions that already hold N events, against the same model server as the platform's. Prints
one JSON line per size: ``{"size", "samples_ms", "pickle_bytes"}``.

    ~/.cache/ak-venv-0.9.5-adk/bin/python -P bench/agentkernel_adk_turn.py MODEL_URL REDIS_URL SIZES RUNS
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

    from agentkernel.adk import GoogleADKModule
    from agentkernel.core.model import AgentRequestText
    from agentkernel.core.runtime import GlobalRuntime
    from google.adk.agents import LlmAgent
    from google.adk.events.event import Event
    from google.adk.integrations.openai import OpenAILlm
    from google.genai import types
    from openai import AsyncOpenAI

    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"It is sunny in {city}."

    client = AsyncOpenAI(base_url=model_url, api_key="unused", max_retries=0)
    agent = LlmAgent(
        name="weather",
        instruction="Answer about the weather.",
        model=OpenAILlm(model="bench-model", client=client),
        tools=[get_weather],
    )
    GoogleADKModule([agent])
    runtime = GlobalRuntime.instance()
    ak_agent = runtime.agents()["weather"]
    store = runtime.sessions()

    def prior(n: int) -> list[Event]:
        """The ADK events ``n`` earlier turns of four events each left."""
        events: list[Event] = []
        for turn in range(n // 4 + 1):
            call = f"call_{turn}"
            call_part = types.Part(function_call=types.FunctionCall(id=call, name="get_weather", args={"city": "P"}))
            r = types.FunctionResponse(id=call, name="get_weather", response={"result": "It is sunny in Paris."})
            events += [
                Event(author="user", content=types.Content(role="user", parts=[types.Part(text=f"user {turn}")])),
                Event(author="weather", content=types.Content(role="model", parts=[call_part])),
                Event(author="weather", content=types.Content(role="user", parts=[types.Part(function_response=r)])),
                Event(author="weather", content=types.Content(role="model", parts=[types.Part(text="y" * 150)])),
            ]
        return events[:n]

    async def one_turn(session_id: str) -> float:
        started = time.perf_counter()
        session = store.load(session_id)
        await runtime.run(ak_agent, session, [AgentRequestText(prompt="What is the weather in Paris?")])
        return (time.perf_counter() - started) * 1000

    async def bench() -> None:
        ids = {}
        for size in sizes:
            session_id = f"akadk-{uuid.uuid4().hex[:8]}-{size}"
            session = store.new(session_id)
            await one_turn_seeded(session, session_id, prior(size))
            ids[size] = session_id
            await one_turn(session_id)  # warm-up
        results: dict[int, list[float]] = {size: [] for size in sizes}
        for _ in range(runs):
            for size in sizes:
                results[size].append(await one_turn(ids[size]))
        from agentkernel.core.session.serde import BinarySerde

        for size in sizes:
            pickled = len(BinarySerde().dumps(store.load(ids[size]).get("adk")))
            print(json.dumps({"size": size, "samples_ms": results[size], "pickle_bytes": pickled}))

    async def one_turn_seeded(session, session_id: str, events: list[Event]) -> None:
        """Run one turn so that Agent Kernel makes its ADK session, then add the seeded events to it."""
        store.store(session)
        await one_turn(session_id)
        session = store.load(session_id)
        adk = session.get("adk")
        adk_session = await adk.session_service.get_session(
            app_name=adk._session.app_name, user_id=adk._session.user_id, session_id=adk._session.id
        )
        for event in events:
            await adk.session_service.append_event(adk_session, event)
        store.store(session)

    asyncio.run(bench())


if __name__ == "__main__":
    main()
