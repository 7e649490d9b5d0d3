"""Tools the tests declare in ``AK_AGENTS["TOOLS"]`` for ``openai_agents`` agents: plain functions."""

from __future__ import annotations

import os

from agents import RunContextWrapper

from agents_app.frameworks.context import CallContext, current_call


def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city's name.
    """
    return f"It is sunny in {city}."


async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def broken(reason: str) -> str:
    """A tool that always fails."""
    raise RuntimeError(f"the tool broke: {reason}")


NOT_A_FUNCTION = 42


def whoami(ctx: RunContextWrapper[CallContext]) -> str:
    """Who this tool works for: the run's context, as the platform gives it."""
    call = ctx.context
    return f"tenant={call.tenant} session={call.session_id} run={call.run_id} agent={call.agent}"


#: The orders ``refund`` refunded in this process, in order.
REFUNDS: list[str] = []


def refund(order: str) -> str:
    """Refund an order: a tool with an effect, to count how often it ran. Each call is also
    written, one line, to the file ``AK_TEST_TOOL_CALLS`` names (a live platform's processes).

    Args:
        order: The order's number.
    """
    REFUNDS.append(order)
    path = os.environ.get("AK_TEST_TOOL_CALLS")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"refund {order}\n")
    return f"Order {order} refunded."


def where_am_i() -> str:
    """Who this tool works for, from ``current_call()`` (any framework but the Agents SDK's)."""
    call = current_call()
    return f"tenant={call.tenant} session={call.session_id} agent={call.agent}"
