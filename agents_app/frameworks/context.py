"""Who calls a deployment's code: the run a tool or a graph works for.

The deployment's tools (``AK_AGENTS__TOOLS``) and graphs (``AK_AGENTS__GRAPHS``) serve every
tenant. Each call gets a ``CallContext`` naming the tenant, session, run and agent it works for,
so that what a tool reads or writes can be scoped to that tenant (a session id alone repeats
across tenants): an ``openai_agents`` tool as ``RunContextWrapper[CallContext].context``, a
graph as ``GraphContext`` (``agents_app.frameworks.langgraph``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from agents_app.frameworks.base import AgentLike
from agents_app.frameworks.model import ModelError
from sessions_app.core import SessionView


@dataclass(frozen=True)
class CallContext:
    """The run a tool call is made for. Frozen: a tool reads it, never changes it."""

    #: The tenant's slug: scope every read and write of the tool's own data to it.
    tenant: str
    #: The session's id (unique within the tenant only).
    session_id: str
    #: The run's id (``GET /runs/<run_id>``); None for a run made through the Python API
    #: (``runner.run``), which records no run.
    run_id: str | None
    #: The name of the tenant's agent the run was made for (after a handoff, the tools of the agent
    #: handed to are called with the same context: the SDK's ``ToolContext.agent`` is the current one).
    agent: str


def call_context(agent: AgentLike, session: SessionView) -> CallContext:
    """The context of a run of ``agent`` on ``session``. Raises ``ModelError`` for a view made
    outside a run (no session key): a tool must never be called without its tenant."""
    if session.key is None:
        raise ModelError("a run of the deployment's tools or graphs needs its session's tenant")
    return CallContext(
        tenant=session.key.tenant, session_id=session.key.session_id, run_id=session.run_id, agent=agent.name
    )


def open_to(name: str, tenant: str | None, restricted: Mapping[str, frozenset[str]]) -> bool:
    """Whether ``tenant`` may use the tool or graph ``name``: a name that ``restricted`` (the
    ``TOOL_TENANTS`` or ``GRAPH_TENANTS`` setting) keeps for some tenants is theirs only; any
    other is every tenant's. No tenant (None) may use a restricted one."""
    allowed = restricted.get(name)
    return allowed is None or (tenant is not None and tenant in allowed)


_CURRENT: ContextVar[CallContext | None] = ContextVar("ak_call_context", default=None)


def current_call() -> CallContext:
    """The ``CallContext`` of the run the calling tool works for, whatever its framework (set by
    the ``pydantic_ai`` and ``smolagents`` adapters around their runs, threads included). Raises
    ``LookupError`` outside a run: a tool must never act without its tenant."""
    call = _CURRENT.get()
    if call is None:
        raise LookupError("no run is under way: a tool's tenant is known only inside a run")
    return call


@contextmanager
def calling_for(call: CallContext) -> Iterator[None]:
    """Make ``call`` the ``current_call()`` within the block (and in tasks and threads started in it)."""
    token = _CURRENT.set(call)
    try:
        yield
    finally:
        _CURRENT.reset(token)
