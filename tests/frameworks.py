"""A real adapter for the tests: ``echo`` that also logs each invocation to a file.

Registered in a live platform with ``AK_FRAMEWORKS=counting=tests.frameworks.CountingEchoFramework``
and ``AK_TEST_INVOCATIONS=<file>``, it lets a test count how often each run was executed across
worker processes: each invocation appends one line ``<message>`` (appends of one short line are
atomic on POSIX, whatever process writes them); each resume of a paused run, ``resume:<message>``.
"""

from __future__ import annotations

import os

from agents_app.frameworks.base import AgentLike, Framework, Pause, Resume
from agents_app.frameworks.echo import EchoFramework
from sessions_app.core import SessionView


class CountingEchoFramework(EchoFramework):
    name = "counting"

    async def run(self, agent: AgentLike, session: SessionView, message: str) -> str | Pause:
        _invoked(message)
        return await super().run(agent, session, message)

    async def resume(self, agent: AgentLike, session: SessionView, pause: Pause, answer: Resume) -> str:
        _invoked(f"resume:{pause.requests[0].arguments.get('message', '')}")
        return await super().resume(agent, session, pause, answer)


def _invoked(line: str) -> None:
    path = os.environ.get("AK_TEST_INVOCATIONS")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(line.replace("\n", " ") + "\n")


class AskingFramework(Framework):
    """Asks for a name before it answers (a ``Pause`` of kind ``input``), counting its questions in
    its own state: the answer ``again`` makes it ask once more; any other is greeted."""

    name = "asking"
    window = 0

    async def run(self, agent: AgentLike, session: SessionView, message: str) -> Pause:
        session.set("asked", 1)
        return Pause(kind="input", prompt={"question": "What is your name?", "about": message})

    async def resume(self, agent: AgentLike, session: SessionView, pause: Pause, answer: Resume) -> str | Pause:
        asked = session.get("asked", 0)
        if answer.input == "again":
            session.set("asked", asked + 1)
            return Pause(kind="input", prompt={"question": "Really, what is your name?", "about": asked + 1})
        return f"hello {answer.input} (asked {asked} times)"
