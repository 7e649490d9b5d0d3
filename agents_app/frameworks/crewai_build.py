"""What a ``crewai`` run is built of: CrewAI's model over the guarded client, the deployment's tools
as CrewAI tools, the agents and tasks of a config. Only a run imports this module (CrewAI is an
optional extra, ``requirements/crewai.txt``, and its import takes seconds).

CrewAI is told, before it is first imported, never to send telemetry or traces
(``CREWAI_DISABLE_TELEMETRY``, ``CREWAI_DISABLE_TRACKING``, ``CREWAI_TRACING_ENABLED=false``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, get_type_hints

from django.conf import settings

from agents_app.frameworks.context import CallContext
from agents_app.frameworks.model import ModelError, sdk_headers
from agents_app.frameworks.tools import UnknownTool, tool_names
from agents_app.outbound import Refused, shared_client

#: CrewAI's documented opt-outs: no anonymous telemetry, no tracing to CrewAI's servers.
QUIET = {"CREWAI_DISABLE_TELEMETRY": "true", "CREWAI_DISABLE_TRACKING": "true", "CREWAI_TRACING_ENABLED": "false"}
#: The API key sent to a server when the agent names none (as the SDK of openai_agents does).
PLACEHOLDER_KEY = "unused"
#: What a tool's result may weigh in the history, at most (longer is cut).
MAX_ITEM_TEXT = 4000


def quiet_import() -> None:
    """Import CrewAI with its telemetry and tracing off (set here, over any value in the environment)."""
    os.environ.update(QUIET)
    import crewai  # noqa: F401


@dataclass
class Steps:
    """The tool calls of one run, in the order they were made (tools may run in CrewAI's threads)."""

    #: ``[task index, tool name, arguments as JSON, output as text]``: JSON, to be kept in a state.
    calls: list[list[Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, task: int, tool: str, arguments: dict[str, Any], output: Any) -> None:
        text = output if isinstance(output, str) else json.dumps(output, default=str)
        with self._lock:
            self.calls.append([task, tool, json.dumps(arguments, default=str), text[:MAX_ITEM_TEXT]])


def model(config: dict[str, Any], key: str | None, *, tenant: str | None) -> Any:
    """CrewAI's native OpenAI model on the config's ``base_url``, calling through the loop's guarded
    client of ``tenant`` (async calls only: a synchronous one is refused), with nothing of the
    server's environment (``sdk_headers``)."""
    llm_class = _guarded_llm_class()
    passed = {option: config[option] for option in ("temperature", "max_tokens") if config.get(option) is not None}
    return llm_class(
        model=config["model"],
        custom_openai=True,
        base_url=config["base_url"],
        api_key=key or PLACEHOLDER_KEY,
        client_params={"default_headers": sdk_headers(key, placeholder=PLACEHOLDER_KEY)},  # omits: not str
        timeout=settings.AK_AGENTS["TIMEOUT"],
        max_retries=0,
        guarded=shared_client(tenant),
        loop=asyncio.get_running_loop(),
        **passed,
    )


@cache
def _guarded_llm_class() -> type:
    """``OpenAICompletion`` (CrewAI 1.15's native OpenAI model, what ``LLM(custom_openai=True)``
    makes) whose clients call through the platform's guarded one. ``client_params`` would give one
    client to both the sync and the async SDK client, which each take only their own kind: the two
    builders are overridden. CrewAI calls the sync one from its worker threads (a model call
    without tools): its requests are sent by the guarded client on the run's loop (``Bridge``)."""
    import httpx
    from crewai.llms.providers.openai.completion import OpenAICompletion
    from openai import AsyncOpenAI, OpenAI
    from pydantic import ConfigDict

    class GuardedCompletion(OpenAICompletion):  # type: ignore[misc,valid-type]
        model_config = ConfigDict(arbitrary_types_allowed=True)
        guarded: Any = None
        loop: Any = None

        def _build_sync_client(self) -> Any:
            bridge = httpx.Client(transport=Bridge(self.guarded, self.loop), trust_env=False)
            return OpenAI(**self._get_client_params(), http_client=bridge)

        def _build_async_client(self) -> Any:
            return AsyncOpenAI(**self._get_client_params(), http_client=self.guarded)

    return GuardedCompletion


class Bridge:
    """An ``httpx`` transport for a sync client in a worker thread: each request is sent by the
    guarded async ``client`` on ``loop`` (the run's), the thread waiting for the whole answer."""

    def __init__(self, client: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.client, self.loop = client, loop

    def handle_request(self, request: Any) -> Any:
        import httpx

        try:
            on_loop = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            on_loop = False
        if on_loop:  # waiting here would stall the loop the answer needs
            raise Refused("a sync model call on the run's event loop")
        body = request.read()
        sent = self.client.build_request(request.method, request.url, headers=request.headers, content=body)
        future = asyncio.run_coroutine_threadsafe(self._send(sent), self.loop)
        status, headers, content = future.result()
        return httpx.Response(status, headers=headers, content=content, request=request)

    async def _send(self, request: Any) -> tuple[int, list[tuple[str, str]], bytes]:
        response = await self.client.send(request)
        try:
            return response.status_code, list(response.headers.multi_items()), await response.aread()
        finally:
            await response.aclose()

    def close(self) -> None:
        return None

    def __enter__(self) -> Bridge:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def tools(names: list[str], *, tenant: str, context: CallContext, steps: Steps, task: int) -> list[Any]:
    """A CrewAI tool for each of the deployment's tools ``names`` (those ``tenant`` may use), each
    call recorded in ``steps``. A function's parameter annotated ``CallContext`` gets the run's."""
    offered = tool_names(tenant)
    made = []
    for name in names:
        if name not in offered:
            raise ModelError(f"unknown tool {name!r}; this deployment offers: {', '.join(offered) or 'none'}")
        made.append(tool_class(name)(context=context, steps=steps, task=task))
    return made


def tool_class(name: str) -> type:
    """The CrewAI tool class of the declared tool ``name``; ``UnknownTool`` when it does not load."""
    path = settings.AK_AGENTS["TOOLS"].get(name)
    if path is None:
        raise UnknownTool(f"unknown tool {name!r} (AK_AGENTS__TOOLS)")
    return _tool_class(name, path)


@cache
def _tool_class(name: str, path: str) -> type:
    """The CrewAI ``BaseTool`` class of the function at ``path``, named ``name`` (made once per
    process): its arguments' schema from the function's signature, without a ``CallContext``."""
    from crewai.tools import BaseTool
    from django.utils.module_loading import import_string
    from pydantic import ConfigDict, create_model

    try:
        function = import_string(path)
    except ImportError as exc:
        raise UnknownTool(f"the tool {name!r} does not load from {path!r}: {exc}") from None
    if not callable(function):
        raise UnknownTool(f"the tool {name!r} ({path}) is not a function")
    try:
        hints = get_type_hints(function)
    except Exception as exc:
        raise UnknownTool(f"the tool {name!r} ({path}) cannot be a tool: {exc}") from None
    fields: dict[str, Any] = {}
    context_parameter = None
    for parameter in inspect.signature(function).parameters.values():
        hint = hints.get(parameter.name, Any)
        if hint is CallContext:
            context_parameter = parameter.name
            continue
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[parameter.name] = (hint, default)
    schema = create_model(f"{name}_arguments", **fields)
    call = _caller(function, context_parameter)

    class FunctionTool(BaseTool):  # type: ignore[misc,valid-type]
        model_config = ConfigDict(arbitrary_types_allowed=True)
        context: Any = None
        steps: Any = None
        task: int = 0

        def _run(self, **arguments: Any) -> Any:
            try:
                output = call(self.context, arguments)
            except Exception as exc:
                self.steps.record(self.task, name, arguments, f"error: {type(exc).__name__}")
                raise
            self.steps.record(self.task, name, arguments, output)
            return output

    FunctionTool.model_fields["name"].default = name
    FunctionTool.model_fields["description"].default = inspect.getdoc(function) or name
    FunctionTool.model_fields["args_schema"].default = schema
    FunctionTool.model_rebuild(force=True)
    return FunctionTool


def _caller(function: Callable[..., Any], context_parameter: str | None) -> Callable[[Any, dict[str, Any]], Any]:
    """Call ``function`` with the model's arguments (and the run's context): a coroutine function
    is run to its end here (CrewAI runs tools in its worker threads)."""

    def call(context: Any, arguments: dict[str, Any]) -> Any:
        given = {**arguments, **({context_parameter: context} if context_parameter else {})}
        result = function(**given)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        return result

    return call
