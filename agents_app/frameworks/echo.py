"""The built-in ``echo`` framework: replies ``echo[turns=T]: <message>``, ``T`` counting the session's
user messages, this one included; ``config.delay_s`` (0 to 60) makes it wait like a slow model.

With ``config.approval`` true every run pauses for one approval, ``{"id": "echo", "tool": "echo",
"arguments": {"message": <message>}}``: approved, it replies as usual (its user message is already
in the session, counted once); denied, ``echo[denied]: <message>``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from agents_app.frameworks.base import (
    AgentLike,
    ApprovalRequest,
    ConfigProblems,
    Framework,
    Pause,
    Resume,
    check_unknown_keys,
)
from sessions_app.core import SessionView

MAX_DELAY_S = 60
WORDS = re.compile(r"\S+\s*")
REQUEST_ID = "echo"


class EchoFramework(Framework):
    name = "echo"
    window = 0  # it counts the user messages; it reads none of them

    def config_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "delay_s": {"type": "number", "minimum": 0, "maximum": MAX_DELAY_S, "description": "Seconds to wait."},
                "approval": {"type": "boolean", "description": "Pause every run for a person's approval."},
            },
        }

    def check_config(self, config: dict[str, Any], problems: ConfigProblems) -> None:
        check_unknown_keys(config, {"delay_s", "approval"}, self.name, problems)
        delay = config.get("delay_s", 0)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_DELAY_S:
            problems.add("delay_s", f"must be a number from 0 to {MAX_DELAY_S}")
        if not isinstance(config.get("approval", False), bool):
            problems.add("approval", "must be true or false")

    async def run(self, agent: AgentLike, session: SessionView, message: str) -> str | Pause:
        await _wait(agent)
        if agent.config.get("approval"):
            return Pause(kind="approval", requests=(ApprovalRequest(REQUEST_ID, "echo", {"message": message}),))
        return _reply(session, f"echo[turns={session.count('user') + 1}]: {message}")

    async def resume(self, agent: AgentLike, session: SessionView, pause: Pause, answer: Resume) -> str:
        await _wait(agent)
        message = str(pause.requests[0].arguments.get("message", "")) if pause.requests else ""
        decision = answer.decisions.get(REQUEST_ID)
        if decision is None or not decision.approve:
            return _reply(session, f"echo[denied]: {message}")
        return _reply(session, f"echo[turns={session.count('user')}]: {message}")  # its message is committed


async def _wait(agent: AgentLike) -> None:
    delay = float(agent.config.get("delay_s", 0) or 0)
    if delay:
        await asyncio.sleep(delay)


def _reply(session: SessionView, reply: str) -> str:
    for word in WORDS.findall(reply):  # streamed word by word, each with the spaces after it
        session.emit_delta(word)
    return reply
