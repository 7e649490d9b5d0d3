"""``pydantic_ai``: a PydanticAI agent, configured by data, not code.

Config::

    {"instructions": "You know the weather.",
     "base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini", "api_key": {"secret": "openai"},
     "temperature": 0.2, "max_tokens": 512,
     "tools": ["get_weather", "refund"], "approval": ["refund"], "history": 20, "max_requests": 10}

The model keys are ``openai_chat``'s: an ``OpenAIChatModel`` whose ``AsyncOpenAI`` client goes
through ``agents_app.outbound`` (the tenant's guarded client). ``tools`` are names the deployment
declares (``plain_tools.py``), run with the run's ``CallContext`` as PydanticAI's ``deps`` and as
``current_call()``; those also in ``approval`` wait for a person: the run pauses
(``Pause(kind="approval")``, PydanticAI's ``DeferredToolRequests``) and ``resume`` goes on with
``DeferredToolResults``. ``history`` is how many of the session's latest entries the model sees;
``max_requests`` how many model calls a run may make.

The history goes both ways through PydanticAI's JSON adapter, ``ModelMessagesTypeAdapter``
(``pydantic_ai_history.py``): the session's entries become its messages, and what a run adds
becomes the run's items. A run streams the model's text when the run is streamed, records the
tokens it used, and keeps its PydanticAI ``conversation_id`` in the agent's own state. Any failure
raises ``ModelError``: the run fails and commits nothing.
"""

from __future__ import annotations

from typing import Any

from agents_app.frameworks.base import (
    AgentLike,
    ApprovalRequest,
    ConfigError,
    ConfigProblems,
    Pause,
    Reply,
    Resume,
    Usage,
    check_unknown_keys,
    path_of,
)
from agents_app.frameworks.context import CallContext, call_context, calling_for
from agents_app.frameworks.model import (
    DEFAULT_HISTORY,
    HISTORY_SCHEMA,
    MAX_HISTORY,
    MODEL_KEYS,
    TEXT_SCHEMA,
    ModelError,
    ModelFramework,
    api_key,
    check_text,
    model_config_schema,
    openai_client,
    redacted,
    sdk_failure,
    validate_int,
    validate_model_keys,
)
from agents_app.frameworks.plain_tools import (
    check_tool_names,
    first_parameter_annotation,
    function_loaded,
    functions_named,
    tools_schema,
)
from agents_app.frameworks.tools import UnknownTool, check_tenant_tools
from sessions_app.core import SessionView

DEFAULT_MAX_REQUESTS = 10
MAX_MAX_REQUESTS = 50
KEYS = MODEL_KEYS | {"instructions", "tools", "approval", "history", "max_requests"}
NOT_INSTALLED = "PydanticAI is not installed: pip install -r requirements/pydantic_ai.txt"
#: The agent's own state: the PydanticAI conversation its turns continue.
CONVERSATION = "conversation_id"
#: The agent's own state while a run waits for a person: what ``resume`` goes on from.
PENDING = "pending"
#: Between the texts of two model answers of one run (e.g. before a tool call, then after it).
SEPARATOR = "\n\n"


class PydanticAIFramework(ModelFramework):
    name = "pydantic_ai"

    def config_schema(self) -> dict[str, Any]:
        return model_config_schema(
            instructions=TEXT_SCHEMA,
            tools=tools_schema(),
            approval={
                **tools_schema(),
                "description": "Those of its tools whose calls wait for a person's approval (the run pauses).",
            },
            history=HISTORY_SCHEMA,
            max_requests={"type": "integer", "minimum": 1, "maximum": MAX_MAX_REQUESTS},
        )

    def check_config(self, config: dict[str, Any], problems: ConfigProblems) -> None:
        check_unknown_keys(config, KEYS, self.name, problems)
        validate_model_keys(config, problems)
        check_text(config, "instructions", problems)
        check_tool_names(config.get("tools", []), problems)
        approval = config.get("approval", [])
        check_tool_names(approval, problems, key="approval")
        if isinstance(approval, list) and isinstance(config.get("tools", []), list):
            for i, name in enumerate(approval):
                if isinstance(name, str) and name not in config.get("tools", []):
                    problems.add(path_of("approval", i), f"names {name!r}, which is not one of the agent's tools")
        validate_int(config, "history", problems, default=DEFAULT_HISTORY, low=0, high=MAX_HISTORY)
        validate_int(config, "max_requests", problems, default=DEFAULT_MAX_REQUESTS, low=1, high=MAX_MAX_REQUESTS)

    def check_runnable(self, config: dict[str, Any]) -> None:
        try:
            import pydantic_ai  # noqa: F401
        except ImportError:
            raise ConfigError("framework", NOT_INSTALLED) from None
        for i, name in enumerate(config.get("tools", [])):
            try:
                _tool(name, function_loaded(name), approval=False)
            except UnknownTool as exc:
                raise ConfigError(path_of("tools", i), str(exc)) from None
        super().check_runnable(config)

    def check_tenant(self, config: dict[str, Any], *, tenant: str | None) -> None:
        check_tenant_tools(config.get("tools", []), tenant=tenant)

    def preload(self) -> None:
        import pydantic_ai  # noqa: F401
        from pydantic_ai.models.openai import OpenAIChatModel  # noqa: F401

    def window_for(self, config: dict[str, Any]) -> int:
        return 2 * config.get("history", DEFAULT_HISTORY)

    async def run(self, agent: AgentLike, session: SessionView, message: str) -> Reply | Pause:
        """Run the agent on the session's latest ``history`` entries and ``message``."""
        from agents_app.frameworks.pydantic_ai_history import history_messages

        history = history_messages(session.messages, agent.config.get("history", DEFAULT_HISTORY))
        return await self._go(agent, session, message, history=history, results=None)

    async def resume(self, agent: AgentLike, session: SessionView, pause: Pause, answer: Resume) -> Reply | Pause:
        """Go on from the paused run's messages (the agent's ``pending`` state) with the person's
        decisions as PydanticAI's ``DeferredToolResults``: an approved call runs, a denied one
        answers the model with the denial."""
        try:
            from pydantic_ai import DeferredToolResults, ToolDenied
        except ImportError:
            raise ModelError(NOT_INSTALLED) from None
        from agents_app.frameworks.pydantic_ai_history import messages_from_json

        pending = session.get(PENDING)
        if not isinstance(pending, dict):
            raise ModelError("the run has no paused PydanticAI run to resume (the agent's state holds none)")
        approvals: dict[str, Any] = {}
        for request in pending.get("requests", []):
            decision = answer.decisions.get(request["id"])
            if decision is None:
                raise ModelError(f"no decision for the tool call {request['id']!r}")
            approvals[request["id"]] = True if decision.approve else ToolDenied(decision.message or "Denied.")
        history = messages_from_json(pending["messages"])
        earlier = Usage(*pending.get("usage", (0, 0)))
        return await self._go(
            agent,
            session,
            None,
            history=history,
            results=DeferredToolResults(approvals=approvals),
            earlier=earlier,
            carried=pending.get("new", 0),
            said=pending.get("text", ""),
        )

    async def _go(
        self,
        agent: AgentLike,
        session: SessionView,
        message: str | None,
        *,
        history: list[Any],
        results: Any,
        earlier: Usage | None = None,
        carried: int = 0,
        said: str = "",
    ) -> Reply | Pause:
        """One PydanticAI run: ``message`` after ``history`` (or, resuming, ``results`` for the
        deferred calls that end ``history``, whose last ``carried`` messages the paused run added, and
        ``said`` the text its model answered before it paused: the reply goes on from it)."""
        try:
            from pydantic_ai import DeferredToolRequests
            from pydantic_ai.usage import UsageLimits
        except ImportError:
            raise ModelError(NOT_INSTALLED) from None
        from agents_app.frameworks.pydantic_ai_history import append_items, messages_as_json, reply_text

        config = agent.config
        context = call_context(agent, session)
        key = await api_key(session, config)
        pydantic_agent = _agent(config, key, context)
        streamer = _Streamer(session, said) if session.streaming else None
        options: dict[str, Any] = {
            "message_history": history,
            "deps": context,
            "usage_limits": UsageLimits(request_limit=config.get("max_requests", DEFAULT_MAX_REQUESTS)),
            "event_stream_handler": streamer,
        }
        if results is not None:
            options["deferred_tool_results"] = results
        if session.get(CONVERSATION):
            options["conversation_id"] = session.get(CONVERSATION)
        try:
            with calling_for(context):
                result = await pydantic_agent.run(message, **options)
        except Exception as exc:
            raise ModelError(_failure(exc, config, key)) from None
        usage = _usage(result, earlier)
        new = result.new_messages()
        if isinstance(result.output, DeferredToolRequests):
            messages = result.all_messages()
            session.set(
                PENDING,
                {
                    "messages": messages_as_json(messages),
                    "new": carried + len(new),
                    "text": reply_text(result.all_messages()[-(carried + len(new)) :]),
                    "usage": [usage.prompt_tokens, usage.completion_tokens] if usage else [0, 0],
                    "requests": [{"id": call.tool_call_id, "tool": call.tool_name} for call in result.output.approvals],
                },
            )
            requests = tuple(
                ApprovalRequest(call.tool_call_id, call.tool_name, call.args_as_dict())
                for call in result.output.approvals
            )
            return Pause(kind="approval", requests=requests)
        made = result.all_messages()[-(carried + len(new)) :] if carried else new
        append_items(session, made)
        if session.get(PENDING) is not None:
            session.set(PENDING, None)
        if result.conversation_id and session.get(CONVERSATION) != result.conversation_id:
            session.set(CONVERSATION, result.conversation_id)
        text = streamer.text if streamer is not None else reply_text(made)
        return Reply(text, usage)


class _Streamer:
    """PydanticAI's ``event_stream_handler``: the model's text passed on as it comes, with
    ``SEPARATOR`` between the texts of two model answers. ``text`` is what was passed on, after
    ``said`` (what a paused run's stream passed on before: a resumed reply goes on from it)."""

    def __init__(self, session: SessionView, said: str = "") -> None:
        self._session = session
        self._pieces: list[str] = [said] if said else []

    @property
    def text(self) -> str:
        return "".join(self._pieces)

    async def __call__(self, ctx: Any, events: Any) -> None:
        from pydantic_ai.messages import PartDeltaEvent, PartStartEvent, TextPart, TextPartDelta

        new_answer = True
        async for event in events:
            piece = None
            if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
                piece = event.part.content
            elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
                piece = event.delta.content_delta
            if not piece:
                continue
            for part in ([SEPARATOR] if new_answer and self._pieces else []) + [piece]:
                self._pieces.append(part)
                self._session.emit_delta(part)
            new_answer = False


def _agent(config: dict[str, Any], key: str | None, context: CallContext) -> Any:
    """The PydanticAI ``Agent`` for ``config``: its model over the tenant's guarded client (nothing
    of the server's OpenAI environment sent), its tools, and ``str`` or ``DeferredToolRequests``
    as its output."""
    from pydantic_ai import Agent, DeferredToolRequests
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider
    from pydantic_ai.settings import ModelSettings

    client = openai_client(config, tenant=context.tenant, key=key)
    model = OpenAIChatModel(config["model"], provider=OpenAIProvider(openai_client=client))
    approval = set(config.get("approval", []))
    try:
        tools = [
            _tool(name, function, approval=name in approval)
            for name, function in functions_named(config.get("tools", []), tenant=context.tenant)
        ]
    except UnknownTool as exc:
        raise ModelError(str(exc)) from None
    model_settings: ModelSettings = {}
    for option in ("temperature", "max_tokens"):
        if config.get(option) is not None:
            model_settings[option] = config[option]  # type: ignore[literal-required]
    return Agent(
        model,
        instructions=config.get("instructions") or None,
        deps_type=CallContext,
        output_type=[str, DeferredToolRequests],
        tools=tools,
        model_settings=model_settings,
        retries=1,
    )


def _tool(name: str, function: Any, *, approval: bool) -> Any:
    """A registry function as PydanticAI's ``Tool`` named ``name`` (one taking PydanticAI's
    ``RunContext`` first gets the run's context in it). Raises ``UnknownTool`` for a function
    PydanticAI cannot describe to a model, or one made for the Agents SDK's run context."""
    from pydantic_ai import Tool

    if "RunContextWrapper" in first_parameter_annotation(function):
        raise UnknownTool(f"the tool {name!r} takes the Agents SDK's RunContextWrapper: it serves openai_agents agents")
    try:
        return Tool(function, name=name, requires_approval=approval)
    except Exception as exc:  # its signature cannot be a tool's schema (UserError, pydantic's errors)
        raise UnknownTool(f"the tool {name!r} cannot be a PydanticAI tool: {exc}") from None


def _usage(result: Any, earlier: Usage | None) -> Usage | None:
    usage = result.usage
    prompt, completion = usage.input_tokens or 0, usage.output_tokens or 0
    if earlier is not None:
        prompt, completion = prompt + earlier.prompt_tokens, completion + earlier.completion_tokens
    return Usage(prompt, completion) if prompt or completion else None


def _failure(exc: BaseException, config: dict[str, Any], key: str | None) -> str:
    """What failed, for the run's error: without the API key the run sent."""
    from pydantic_ai.exceptions import ModelHTTPError, UsageLimitExceeded

    if isinstance(exc, UsageLimitExceeded):
        limit = config.get("max_requests", DEFAULT_MAX_REQUESTS)
        text = f"the run reached max_requests ({limit} model calls) without a final answer"
    elif isinstance(exc, ModelHTTPError):
        text = f"the model server answered {exc.status_code}: {str(exc.body or exc.message)[:300]}"
    else:
        text = sdk_failure(exc) or _cause_failure(exc) or f"the agent failed: {type(exc).__name__}: {str(exc)[:300]}"
    return redacted(text, key)


def _cause_failure(exc: BaseException) -> str | None:
    """``sdk_failure`` of what caused ``exc`` (PydanticAI wraps the OpenAI SDK's errors)."""
    cause = exc.__cause__ or exc.__context__
    return sdk_failure(cause) if cause is not None else None
