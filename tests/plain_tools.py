"""Tools declared in ``AK_AGENTS["TOOLS"]`` for agents of the frameworks that run in their own
environments (``crewai``): plain functions, importing no agent library."""

from __future__ import annotations

from agents_app.frameworks.context import CallContext


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"It is sunny in {city}."


async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def broken(reason: str) -> str:
    """A tool that always fails."""
    raise RuntimeError(f"the tool broke: {reason}")


def whoami(context: CallContext, question: str = "") -> str:
    """Who this tool works for: the run's context, as the platform gives it."""
    return f"tenant={context.tenant} session={context.session_id} run={context.run_id} agent={context.agent}"
