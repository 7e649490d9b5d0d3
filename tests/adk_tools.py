"""Tools the tests declare in ``AK_AGENTS["TOOLS"]`` for ``google_adk`` agents: plain functions."""

from __future__ import annotations

from google.adk.tools import ToolContext

from agents_app.frameworks.context import CallContext


def remember(note: str, tool_context: ToolContext) -> str:
    """Remember a note, in each of ADK's state scopes.

    Args:
        note: What to remember.
    """
    state = tool_context.state
    state["note"] = note
    state["user:note"] = note
    state["app:notes"] = int(state.get("app:notes") or 0) + 1
    state["temp:scratch"] = note
    return f"remembered {note}"


def whoami(call: CallContext, greeting: str) -> str:
    """Who this tool works for: the run's context, as the platform gives it.

    Args:
        greeting: A word to start with.
    """
    return f"{greeting} tenant={call.tenant} session={call.session_id} run={call.run_id} agent={call.agent}"


def remember_a_set(note: str, tool_context: ToolContext) -> str:
    """Remember a note as a set: not JSON, so the run cannot keep it.

    Args:
        note: What to remember.
    """
    tool_context.state["notes"] = {note}
    return "remembered"
