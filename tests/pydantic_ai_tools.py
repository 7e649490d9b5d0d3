"""A tool the tests declare for ``pydantic_ai`` agents that takes PydanticAI's run context."""

from __future__ import annotations

from pydantic_ai import RunContext

from agents_app.frameworks.context import CallContext


def whoami_deps(ctx: RunContext[CallContext], greeting: str) -> str:
    """Who this tool works for, from PydanticAI's ``deps``.

    Args:
        greeting: A word to start with.
    """
    call = ctx.deps
    return f"{greeting} tenant={call.tenant} session={call.session_id} agent={call.agent}"
