"""``langgraph``: an agent that runs one of the deployment's LangGraph graphs.

Graphs are code, so the deployment registers them by name (``AK_AGENTS["GRAPHS"]``: a name to
the dotted path of a factory ``factory(options: dict) -> StateGraph | CompiledStateGraph``); a
tenant's agent picks one by name and configures its model, with data only::

    {"graph": "support", "mode": "messages", "options": {"tone": "brief"}, "history": 20,
     "base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini", "api_key": {"secret": "openai"}}

The graph is compiled once per (name, options) in a process and shared by every run, never
changed; a run gives it LangGraph's runtime context (``GraphContext``: the run's model and the
tenant, session, run and agent it works for). Its state is a ``MessagesState``.

``mode``: ``"messages"`` (default) gives the graph the session's latest ``history`` text messages
and the new one; the messages it adds become the run's items, the last AI message's text the
reply. ``"checkpoint"`` is for graphs that wait for a person (``interrupt``): the graph's
checkpoint is kept as JSON in the agent's state (``langgraph_checkpoint``, at most
``langgraph_run.MAX_CHECKPOINT_BYTES``). A run that stops at an interrupt pauses
(``langgraph_run.pause_for``): ``{"kind": "input", "prompt": <the interrupt's value>}``, or, for
a value shaped as LangChain's human-in-the-loop middleware asks (``{"action_requests": [{"name",
"args"}...]}``), ``{"kind": "approval"}`` with one request per action. ``resume`` goes on from the
stored checkpoint, in whatever process, with ``Command(resume=...)``: the person's input as it
came, or ``{"decisions": [{"type": "approve"} | {"type": "reject", "message"?}...]}`` in the
actions' order. A new message to a graph that still waits at an interrupt (its paused run was
cancelled) is new input: LangGraph drops the interrupt and runs the graph from its start. A
``compaction`` replaces, before a new message, the checkpoint's turns the session's latest summary
covers with one user message carrying it (``GraphRun._compacted``; graphs whose ``messages`` are
``MessagesState``'s, with ``add_messages``; any other graph's checkpoint is left whole).

Any failure of the graph or its model raises ``ModelError`` (never carrying the API key): the run
fails and commits nothing, the stored checkpoint included.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import orjson
from django.conf import settings
from django.utils.module_loading import import_string

from agents_app.frameworks.base import (
    AgentLike,
    ConfigError,
    ConfigProblems,
    Pause,
    Reply,
    Resume,
    check_unknown_keys,
)
from agents_app.frameworks.context import call_context, open_to
from agents_app.frameworks.model import (
    DEFAULT_HISTORY,
    HISTORY_SCHEMA,
    MAX_HISTORY,
    MODEL_KEYS,
    MODEL_KEYS_SCHEMA,
    ModelError,
    ModelFramework,
    api_key,
    redacted,
    sdk_failure,
    sdk_headers,
    validate_int,
    validate_model_keys,
)
from agents_app.outbound import Refused, shared_client
from infra.io_threads import io_executor
from sessions_app.core import SessionView

logger = logging.getLogger(__name__)

MODES: Final = ("messages", "checkpoint")
KEYS: Final = MODEL_KEYS | {"graph", "mode", "history", "options"}
#: Compiled graphs a process keeps, one per (name, factory, options).
MAX_CACHED_GRAPHS: Final = 64
NOT_INSTALLED: Final = "LangGraph is not installed: pip install -r requirements/langgraph.txt"


@dataclass(frozen=True)
class GraphContext:
    """What a graph's nodes get as ``runtime.context`` (declare
    ``StateGraph(MessagesState, context_schema=GraphContext)``); a ``ToolNode``'s tools read it
    from a ``runtime: ToolRuntime[GraphContext]`` parameter. ``tenant``, ``session_id``,
    ``run_id`` and ``agent`` are a ``CallContext``'s: scope the graph's own data to ``tenant``."""

    #: The agent's model (a ``langchain_openai.ChatOpenAI`` for this run, with the tenant's API
    #: key), or None when the agent's config names no model. Call it asynchronously
    #: (``ainvoke``, ``astream``): a synchronous call is refused.
    model: Any = None
    agent: str = ""
    session_id: str | None = None
    tenant: str = ""
    run_id: str | None = None


class LangGraphFramework(ModelFramework):
    name = "langgraph"

    def config_schema(self) -> dict[str, Any]:
        graphs = graph_names()  # those every tenant may pick: some may be kept for some tenants
        return {
            "type": "object",
            "additionalProperties": False,
            "required": ["graph"],
            "properties": {
                **MODEL_KEYS_SCHEMA,
                # None registered (AK_AGENTS__GRAPHS): no config is valid.
                "graph": {"type": "string", "enum": graphs} if graphs else {"not": {}},
                "mode": {"type": "string", "enum": list(MODES)},
                "history": HISTORY_SCHEMA,
                "options": {"type": "object", "description": "Given to the graph's factory (no null characters)."},
            },
            # A model is optional, but whole when given.
            "anyOf": [
                {"not": {"anyOf": [{"required": [key]} for key in sorted(MODEL_KEYS)]}},
                {"required": ["base_url", "model"]},
            ],
        }

    def check_config(self, config: dict[str, Any], problems: ConfigProblems) -> None:
        check_unknown_keys(config, KEYS, self.name, problems)
        if not isinstance(config.get("graph"), str):  # which names a tenant may pick: check_tenant
            known = ", ".join(graph_names()) or "none registered (AK_AGENTS__GRAPHS)"
            start = "required: the name of" if config.get("graph") is None else "must name"
            problems.add("graph", f"{start} one of the deployment's graphs: {known}")
        if config.get("mode", MODES[0]) not in MODES:
            problems.add("mode", f"must be one of: {', '.join(MODES)}")
        if MODEL_KEYS & set(config):  # a model is optional, but whole when given
            validate_model_keys(config, problems)
        validate_int(config, "history", problems, default=DEFAULT_HISTORY, low=0, high=MAX_HISTORY)
        if not isinstance(config.get("options", {}), dict):
            problems.add("options", "must be a JSON object (given to the graph's factory)")

    def check_tenant(self, config: dict[str, Any], *, tenant: str | None) -> None:
        graphs = graph_names(tenant)
        if config["graph"] not in graphs:
            known = ", ".join(graphs) or "none registered (AK_AGENTS__GRAPHS)"
            raise ConfigError("graph", f"must name one of the deployment's graphs: {known}")

    def check_runnable(self, config: dict[str, Any]) -> None:
        if not langgraph_installed():
            raise ConfigError("framework", NOT_INSTALLED)
        path = settings.AK_AGENTS["GRAPHS"].get(config["graph"])
        if path is None:
            raise ConfigError("graph", "must name one of the deployment's graphs (AK_AGENTS__GRAPHS)")
        try:
            import_string(path)
        except ImportError as exc:
            logger.warning("the factory %s of graph %r does not import: %s", path, config["graph"], exc)
            raise ConfigError("graph", f"the graph {config['graph']!r} cannot be loaded here") from None
        super().check_runnable(config)

    def preload(self) -> None:
        import langchain_openai  # noqa: F401
        import langgraph.graph
        import langgraph.types  # noqa: F401

    def window_for(self, config: dict[str, Any]) -> int:
        if config.get("mode", MODES[0]) == "checkpoint":
            return 0  # the graph keeps its own history, in its checkpoint
        return super().window_for(config)

    def shown_for(self, config: dict[str, Any]) -> int | None:
        if config.get("mode", MODES[0]) == "checkpoint":
            return None  # its checkpoint's messages, all of them
        return super().shown_for(config)

    async def run(self, agent: AgentLike, session: SessionView, message: str) -> Reply | Pause:
        return await self._go(agent, session, lambda graph_run: graph_run.run(message))

    async def resume(self, agent: AgentLike, session: SessionView, pause: Pause, answer: Resume) -> Reply | Pause:
        """Go on from the interrupt the graph's checkpoint waits at, with ``Command(resume=...)``."""
        return await self._go(agent, session, lambda graph_run: graph_run.resume(pause, answer))

    async def _go(
        self, agent: AgentLike, session: SessionView, step: Callable[[Any], Awaitable[Reply | Pause]]
    ) -> Reply | Pause:
        """``step`` on a ``GraphRun`` of the agent's graph for this run; every failure a ``ModelError``."""
        if not langgraph_installed():
            raise ModelError(NOT_INSTALLED)
        from agents_app.frameworks.langgraph_run import GraphRun

        config = agent.config
        call = call_context(agent, session)
        if not open_to(config["graph"], call.tenant, settings.AK_AGENTS["GRAPH_TENANTS"]):
            raise ModelError(f"the deployment has no graph {config['graph']!r} (AK_AGENTS__GRAPHS)")
        key = await api_key(session, config)
        try:
            graph = await graph_for(config["graph"], config.get("options", {}))
            model = chat_model(config, key, tenant=call.tenant)
            context = GraphContext(model, call.agent, call.session_id, tenant=call.tenant, run_id=call.run_id)
            mode, history = config.get("mode", MODES[0]), config.get("history", DEFAULT_HISTORY)
            return await step(GraphRun(graph, session, context, name=config["graph"], mode=mode, history=history))
        except ModelError as exc:
            raise ModelError(redacted(str(exc), key)) from None
        except Exception as exc:
            failed = f"the graph {config['graph']!r} failed: {type(exc).__name__}: {str(exc)[:300]}"
            raise ModelError(redacted(sdk_failure(exc) or failed, key)) from None


def graph_names(tenant: str | None = None) -> list[str]:
    """The graphs a config of ``tenant``'s may pick (without a tenant: those every tenant may)."""
    restricted = settings.AK_AGENTS["GRAPH_TENANTS"]
    return sorted(name for name in settings.AK_AGENTS["GRAPHS"] if open_to(name, tenant, restricted))


def langgraph_installed() -> bool:
    """Whether ``requirements/langgraph.txt`` is installed (LangGraph, and LangChain's OpenAI models)."""
    try:
        importlib.import_module("langgraph.graph")
        importlib.import_module("langchain_openai")
    except ImportError:
        return False
    return True


_graphs: OrderedDict[tuple[str, str, bytes], Future[Any]] = OrderedDict()
_graphs_lock = threading.Lock()


async def graph_for(name: str, options: dict[str, Any]) -> Any:
    """The compiled graph ``name`` with ``options``: built by its factory once per process (in
    the I/O threads, as a factory may take its time; runs that ask meanwhile wait for the same
    build) and shared by every run, which must not change it (``graph.copy(update=...)`` makes a
    run's own). Raises ``ModelError``, and what the factory raised."""
    path = settings.AK_AGENTS["GRAPHS"].get(name)
    if path is None:
        raise ModelError(f"the deployment has no graph {name!r} (AK_AGENTS__GRAPHS)")
    key = (name, path, orjson.dumps(options, option=orjson.OPT_SORT_KEYS))
    with _graphs_lock:
        built = _graphs.get(key)
        if built is None or built.cancelled() or (built.done() and built.exception() is not None):
            built = _graphs[key] = io_executor().submit(_build, name, path, options)  # a failed one again
            while len(_graphs) > MAX_CACHED_GRAPHS:
                _graphs.popitem(last=False)
        else:
            _graphs.move_to_end(key)
    # Shielded: a run cancelled while it waits does not cancel the build others wait for.
    return await asyncio.shield(asyncio.wrap_future(built))


def _build(name: str, path: str, options: dict[str, Any]) -> Any:
    from langgraph.graph import StateGraph
    from langgraph.pregel import Pregel

    try:
        factory = import_string(path)
    except ImportError as exc:
        logger.warning("the factory %s of graph %r does not import: %s", path, name, exc)
        raise ModelError(f"the graph {name!r} cannot be loaded here") from None
    built = factory(json.loads(json.dumps(options)))  # its own copy of the options
    if isinstance(built, StateGraph):
        built = built.compile()
    if not isinstance(built, Pregel):
        raise ModelError(f"the factory of graph {name!r} made a {type(built).__name__}, not a StateGraph")
    if built.checkpointer not in (None, False):  # the platform keeps the checkpoints, per session
        built = built.copy(update={"checkpointer": None})
    return built


def chat_model(config: dict[str, Any], key: str | None, *, tenant: str | None) -> Any:
    """The agent's model for one run: a ``ChatOpenAI`` on its ``base_url`` with the tenant's key,
    calling through the loop's guarded client of ``tenant``, or None when the config names no model.
    Nothing comes from the server's environment (``sdk_headers``): without a key, no ``Authorization``."""
    if "base_url" not in config:
        return None
    import httpx2
    from langchain_openai import ChatOpenAI

    headers = sdk_headers(key, placeholder=None)
    passed = {option: config[option] for option in ("temperature", "max_tokens") if config.get(option) is not None}
    return ChatOpenAI(
        base_url=config["base_url"],
        model=config["model"],
        api_key=key or "unused",  # never sent without a key: its header is omitted
        timeout=settings.AK_AGENTS["TIMEOUT"],
        max_retries=0,
        stream_usage=True,
        http_async_client=shared_client(tenant, http=httpx2),
        http_client=_sync_refused(),
        model_kwargs={"extra_headers": headers},
        **passed,
    )


@cache
def _sync_refused() -> Any:
    """An httpx2 client that sends nothing: a graph's model is called on the loop, through the
    guarded client; a synchronous call would skip the platform's address checks."""
    import httpx2

    class Refusing(httpx2.BaseTransport):  # type: ignore[misc]
        def handle_request(self, request: Any) -> Any:
            raise Refused("a graph calls its model asynchronously only (ainvoke, astream)")

    return httpx2.Client(transport=Refusing(), trust_env=False)
