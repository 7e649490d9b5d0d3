"""``crewai``: a CrewAI agent, or a small crew of them, configured by data, not code.

An agent::

    {"role": "Support agent", "goal": "Answer the customer", "backstory": "You know our product.",
     "tools": ["get_weather"], "expected_output": "A short answer.", "history": 20, "max_iter": 10,
     "base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini", "api_key": {"secret": "openai"}}

or a crew, whose tasks run in order, each seeing the outputs of those before it::

    {"agents": [{"role": "Researcher", "goal": "...", "backstory": "...", "tools": ["search"]},
                {"role": "Writer", "goal": "...", "backstory": "..."}],
     "tasks": [{"description": "Research: {message}", "expected_output": "Facts", "agent": "Researcher"},
               {"description": "Answer {message} from the facts.\\n{history}", "expected_output": "A reply",
                "agent": "Writer", "human_input": false}],
     "base_url": ..., "model": ...}

Each run is a ``Crew`` (sequential) kicked off natively async (``akickoff``) with the inputs
``message`` and ``history`` (the session's latest ``history`` text messages, one ``role: text`` a
line); a lone agent's task is the message, the conversation after it. The crew's output is the
reply; the tool calls and each task's output but the last (handed to the next task's agent) are the
run's items; CrewAI's usage metrics are the run's usage; the outputs of the last run's tasks are kept
in the agent's own state (``task_outputs``). Its model is CrewAI's native OpenAI one, through the
platform's guarded client (``crewai_build.model``). Any failure raises ``ModelError`` (never
carrying the API key): the run fails and commits nothing.

A task with ``human_input`` pauses the run once its agent has an answer (``Pause(kind="input")``,
the answer in ``prompt``): ``resume`` with blank input accepts it, with text sends it to the agent
as CrewAI's feedback and pauses again with the new answer (``crewai_human``).
"""

from __future__ import annotations

from typing import Any, Final

from agents_app.frameworks import crewai_config
from agents_app.frameworks.base import (
    AgentLike,
    ConfigError,
    ConfigProblems,
    Pause,
    Reply,
    Resume,
    Usage,
    path_of,
)
from agents_app.frameworks.context import call_context
from agents_app.frameworks.model import (
    DEFAULT_HISTORY,
    ModelError,
    ModelFramework,
    api_key,
    redacted,
    sdk_failure,
)
from agents_app.frameworks.tools import UnknownTool, tool_names
from sessions_app.core import SessionView
from sessions_app.stores.base import HANDOFF, TOOL_CALL, TOOL_RESULT

NOT_INSTALLED: Final = "CrewAI is not installed: pip install -r requirements/crewai.txt (in its own environment)"
#: The agent's own state: the outputs of its last run's tasks, ``[{"agent": role, "output": text}]``.
TASK_OUTPUTS: Final = "task_outputs"
#: The agent's own state while a run waits for a person (``crewai_human``).
PAUSED: Final = "paused"


class CrewAIFramework(ModelFramework):
    name = "crewai"

    def config_schema(self) -> dict[str, Any]:
        return crewai_config.schema()

    def check_config(self, config: dict[str, Any], problems: ConfigProblems) -> None:
        crewai_config.check(config, problems, self.name)

    def check_runnable(self, config: dict[str, Any]) -> None:
        try:
            import crewai  # noqa: F401
        except ImportError:
            raise ConfigError("framework", NOT_INSTALLED) from None
        from agents_app.frameworks import crewai_build

        for path, names in crewai_config.tool_lists(config).items():
            for name in names:
                try:
                    crewai_build.tool_class(name)
                except UnknownTool as exc:
                    raise ConfigError(path, str(exc)) from None
        super().check_runnable(config)

    def check_tenant(self, config: dict[str, Any], *, tenant: str | None) -> None:
        offered = tool_names(tenant)
        for path, names in crewai_config.tool_lists(config).items():
            for i, name in enumerate(names):
                if name not in offered:
                    listed = ", ".join(offered) or "none"
                    raise ConfigError(path_of(path, i), f"unknown tool {name!r}; this deployment offers: {listed}")

    def preload(self) -> None:
        from agents_app.frameworks import crewai_build

        crewai_build.quiet_import()

    def window_for(self, config: dict[str, Any]) -> int:
        return 2 * config.get("history", DEFAULT_HISTORY)

    async def run(self, agent: AgentLike, session: SessionView, message: str) -> Reply | Pause:
        """Kick the agent's crew off on ``message``; pause at a task that asks for human input."""
        inputs = {"message": message, "history": transcript(session, agent.config.get("history", DEFAULT_HISTORY))}
        return await self._kickoff(agent, session, inputs, resumed=None)

    async def resume(self, agent: AgentLike, session: SessionView, pause: Pause, answer: Resume) -> Reply | Pause:
        """Go on from the task that waited: blank input accepts its answer, text is feedback."""
        paused = session.get(PAUSED)
        if not isinstance(paused, dict):
            raise ModelError("the crew has no paused task to go on with")
        return await self._kickoff(agent, session, paused["inputs"], resumed=(paused, answer.input))

    async def _kickoff(
        self, agent: AgentLike, session: SessionView, inputs: dict[str, str], resumed: tuple[dict[str, Any], Any] | None
    ) -> Reply | Pause:
        try:
            from agents_app.frameworks import crewai_build, crewai_crew, crewai_human

            crewai_build.quiet_import()
        except ImportError:
            raise ModelError(NOT_INSTALLED) from None
        context = call_context(agent, session)
        key = await api_key(session, agent.config)
        try:
            built = crewai_crew.build(agent.config, key, context=context)
            outputs = await crewai_human.Human(built, resumed).kickoff(inputs)
        except crewai_human.WaitForHuman as waiting:
            session.set(PAUSED, {"inputs": inputs, **waiting.state})
            return Pause(kind="input", prompt={"task": waiting.task, "agent": waiting.role, "output": waiting.output})
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(_failure(exc, key)) from None
        if session.get(PAUSED) is not None:
            session.set(PAUSED, None)
        _record(session, built, outputs)
        session.set(TASK_OUTPUTS, [{"agent": role, "output": text} for role, text in outputs])
        usage = built.usage()
        return Reply(outputs[-1][1], Usage(*usage) if any(usage) else None)


def transcript(session: SessionView, history: int) -> str:
    """The session's latest ``history`` text messages, one ``role: text`` a line (``(none)``)."""
    messages = session.text_messages()[-history:] if history else []
    return "\n".join(f"{m.role}: {m.content}" for m in messages) or "(none)"


def _record(session: SessionView, built: Any, outputs: list[tuple[str, str]]) -> None:
    """The run's items: each task's tool calls and results, then its output handed to the next task."""
    for task, (role, text) in enumerate(outputs):
        for _, tool, arguments, output in (call for call in built.steps.calls if call[0] == task):
            data = {"name": tool, "arguments": arguments, "task": task}
            session.append(TOOL_CALL, data, content=f"{tool}({arguments})")
            session.append(TOOL_RESULT, {"name": tool, "output": output, "task": task}, content=output)
        if task + 1 < len(outputs):
            following = outputs[task + 1][0]
            data = {"from": role, "to": following, "task": task, "output": text}
            session.append(HANDOFF, data, content=f"{role} → {following}")


def _failure(exc: BaseException, key: str | None) -> str:
    """What failed, for the run's error, without the API key."""
    text = sdk_failure(exc) or f"the crew failed: {type(exc).__name__}: {str(exc)[:300]}"
    return redacted(text, key)
