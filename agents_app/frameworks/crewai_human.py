"""CrewAI's human input (``Task(human_input=True)``) as a run that waits for a person.

CrewAI asks its ``HumanInputProvider`` (``crewai.core.providers.human_input``: set per context
with ``set_provider``) for feedback once a task's agent has an answer; its default one reads the
terminal. Ours stops the crew instead (``WaitForHuman``): the adapter keeps in the agent's state
what the crew had done, the agent's conversation on that task and its answer, and pauses the run.
Resumed, blank input accepts the answer (the crew goes on with the next task); text is CrewAI's
feedback: the agent's conversation is restored (``setup_messages``), the feedback added, and the
agent answers again, which asks for input again, as CrewAI's own loop does.
"""

from __future__ import annotations

from typing import Any

from agents_app.frameworks.crewai_crew import Built

#: The keys of a model message kept while a run waits (what the model server was sent).
MESSAGE_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name")


class WaitForHuman(Exception):
    """A task's answer waits for a person: ``state`` is what ``resume`` goes on from (JSON)."""

    def __init__(self, task: int, role: str, output: str, state: dict[str, Any]) -> None:
        super().__init__(f"task {task} waits for human input")
        self.task, self.role, self.output, self.state = task, role, output, state


class Human:
    """One run's kickoff of its crew: from the start, or from where a paused run stopped."""

    def __init__(self, built: Built, resumed: tuple[dict[str, Any], Any] | None) -> None:
        self.built = built
        self.resumed = resumed

    async def kickoff(self, inputs: dict[str, str]) -> list[tuple[str, str]]:
        """Run the crew; the output (role, text) of each of its tasks. Raises ``WaitForHuman``."""
        from crewai.core.providers.human_input import reset_provider, set_provider

        built = self.built
        done: list[tuple[str, str]] = []
        start, feedback = 0, None
        if self.resumed is not None:
            paused, answer = self.resumed
            done = [(role, text) for role, text in paused["done"]]
            built.steps.calls.extend(paused["steps"])
            text = answer if isinstance(answer, str) else ("" if answer is None else str(answer))
            if text.strip():
                start, feedback = paused["task"], (paused["messages"], text)
            else:
                done.append((built.roles[paused["task"]], paused["output"]))
                start = paused["task"] + 1
        if start >= len(built.tasks):
            return done
        built.fill(inputs)
        crew = built.crew(start, done)
        provider = Provider(built, start, done, feedback)
        token = set_provider(provider)
        try:
            output = await crew.akickoff()  # the inputs are in the tasks already (Built.fill)
        except Exception:
            if provider.waiting is not None:
                raise provider.waiting from None
            raise
        finally:
            reset_provider(token)
        if provider.waiting is not None:
            raise provider.waiting
        return done + [(task.agent, task.raw) for task in output.tasks_output]


class Provider:
    """A ``HumanInputProvider`` that stops the crew at the first answer that asks for input."""

    def __init__(
        self, built: Built, start: int, done: list[tuple[str, str]], feedback: tuple[list[Any], str] | None
    ) -> None:
        self.built, self.start, self.done, self.feedback = built, start, done, feedback
        self.waiting: WaitForHuman | None = None

    def setup_messages(self, context: Any) -> bool:
        """For the task a person answered with feedback: its agent's conversation, then the feedback."""
        if self.feedback is None or context.task is not self.built.tasks[self.start]:
            return False
        messages, text = self.feedback
        self.feedback = None
        context.messages.extend(dict(message) for message in messages)
        context.messages.append(context._format_feedback_message(text))
        return True

    def post_setup_messages(self, context: Any) -> None:
        return None

    def handle_feedback(self, formatted_answer: Any, context: Any) -> Any:
        raise self._wait(formatted_answer, context)

    async def handle_feedback_async(self, formatted_answer: Any, context: Any) -> Any:
        raise self._wait(formatted_answer, context)

    def _wait(self, answer: Any, context: Any) -> WaitForHuman:
        built = self.built
        task = next(i for i, t in enumerate(built.tasks) if t is context.task)
        output = answer.output if isinstance(answer.output, str) else answer.output.model_dump_json()
        finished = [(built.roles[i], built.tasks[i].output.raw) for i in range(self.start, task)]
        messages = [{k: m[k] for k in MESSAGE_KEYS if m.get(k) is not None} for m in context.messages]
        state = {
            "task": task,
            "done": [list(pair) for pair in self.done[: self.start] + finished],
            "messages": messages,
            "output": output,
            "steps": built.steps.calls,
        }
        self.waiting = WaitForHuman(task, built.roles[task], output, state)
        return self.waiting
