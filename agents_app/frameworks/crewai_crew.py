"""The CrewAI ``Agent``s and ``Task``s of one run of a ``crewai`` agent, built from its config.

A lone agent (``role``, ``goal``, ``backstory``) is a crew of one agent and one task: the message,
then the conversation so far. Every task sees the outputs of the tasks before it (CrewAI's
``context``), also when a resumed run starts in the middle of the crew.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agents_app.frameworks import crewai_build
from agents_app.frameworks.context import CallContext
from agents_app.frameworks.crewai_config import DEFAULT_EXPECTED_OUTPUT, DEFAULT_MAX_ITER, PLACEHOLDER

#: The lone agent's task: the message, then the session's latest messages.
LONE_TASK = "{message}\n\nThe conversation so far, oldest first (it ends before the message above):\n{history}"


@dataclass
class Built:
    """One run's crew: its CrewAI agents (by role) and tasks, and the tool calls they make."""

    agents: dict[str, Any]
    tasks: list[Any]
    #: The role of each task's agent, in the tasks' order.
    roles: list[str]
    #: Whether each task asks for human input.
    human: list[bool]
    #: The tool calls, each tagged with its task's index.
    steps: crewai_build.Steps = field(default_factory=crewai_build.Steps)

    def fill(self, inputs: dict[str, str]) -> None:
        """Put the run's ``inputs`` in its tasks' texts, in one pass (CrewAI's own interpolation
        would read placeholders in the inputs too: a message naming ``{history}``)."""
        for task in self.tasks:
            for attribute in ("description", "expected_output"):
                text = getattr(task, attribute)
                filled = PLACEHOLDER.sub(lambda found: inputs.get(found[1], found[0]), text)
                setattr(task, attribute, filled)

    def crew(self, start: int, done: Sequence[tuple[str, str]]) -> Any:
        """A sequential ``Crew`` of the tasks from ``start`` on; ``done``: the outputs (role, text)
        of the tasks before it, which they see as context."""
        from crewai import Crew, Process
        from crewai.tasks.task_output import TaskOutput

        for i, (role, text) in enumerate(done[:start]):
            self.tasks[i].output = TaskOutput(description=self.tasks[i].description, raw=text, agent=role)
        for i, task in enumerate(self.tasks):
            task.context = self.tasks[:i]
        crew = Crew(
            agents=list(self.agents.values()),
            tasks=self.tasks[start:],
            process=Process.sequential,
            verbose=False,
            cache=False,
            memory=False,
        )
        # CrewAI logs each task's output, for ``crewai replay``, to a SQLite file in the user's data
        # directory, shared by every run of the process: a tenant's data at rest outside its session,
        # and blocking I/O on the loop. This crew keeps its log in memory, and drops it with the crew
        # (``Crew()`` still makes the file's empty table).
        crew._task_output_handler = TaskOutputsInMemory()
        return crew

    def usage(self) -> tuple[int, int]:
        """The prompt and completion tokens CrewAI counted on the crew's models (one, shared)."""
        prompt = completion = 0
        for llm in {id(agent.llm): agent.llm for agent in self.agents.values()}.values():
            summary = llm.get_token_usage_summary()
            prompt += summary.prompt_tokens
            completion += summary.completion_tokens
        return prompt, completion


class TaskOutputsInMemory:
    """What CrewAI's ``TaskOutputStorageHandler`` does, in memory: the crew's task log."""

    def __init__(self) -> None:
        self.logs: list[dict[str, Any]] = []

    def update(self, task_index: int, log: dict[str, Any]) -> None:
        self.logs.append(log)

    def add(
        self, task: Any, output: dict[str, Any], task_index: int, inputs: Any = None, was_replayed: bool = False
    ) -> None:
        self.logs.append({"task": task, "output": output, "task_index": task_index, "inputs": inputs or {}})

    def reset(self) -> None:
        self.logs.clear()

    def load(self) -> list[dict[str, Any]] | None:
        return self.logs or None


def build(config: dict[str, Any], key: str | None, *, context: CallContext) -> Built:
    """The agents and tasks of ``config`` (valid) for one run of ``context.tenant``'s, each agent's
    model through the tenant's guarded client and its tools only those the tenant may use."""
    from crewai import Agent, Task

    if "agents" in config:
        personas = config["agents"]
        task_specs = config["tasks"]
    else:
        personas = [{k: config[k] for k in ("role", "goal", "backstory")} | {"tools": config.get("tools", [])}]
        task_specs = [
            {
                "description": LONE_TASK,
                "expected_output": config.get("expected_output", DEFAULT_EXPECTED_OUTPUT),
                "agent": config["role"],
                "human_input": config.get("human_input", False),
            }
        ]
    llm = crewai_build.model(config, key, tenant=context.tenant)
    tool_lists = {persona["role"]: persona.get("tools", []) for persona in personas}
    agents = {
        persona["role"]: Agent(
            role=persona["role"],
            goal=persona["goal"],
            backstory=persona["backstory"],
            llm=llm,
            allow_delegation=False,
            max_iter=config.get("max_iter", DEFAULT_MAX_ITER),
            max_retry_limit=0,
            verbose=False,
        )
        for persona in personas
    }
    built = Built(agents=agents, tasks=[], roles=[], human=[])
    for i, spec in enumerate(task_specs):
        role = spec["agent"]
        tools = crewai_build.tools(tool_lists[role], tenant=context.tenant, context=context, steps=built.steps, task=i)
        built.tasks.append(
            Task(
                description=spec["description"],
                expected_output=spec["expected_output"],
                agent=agents[role],
                tools=tools,
                human_input=spec.get("human_input", False),
            )
        )
        built.roles.append(role)
        built.human.append(spec.get("human_input", False))
    return built
