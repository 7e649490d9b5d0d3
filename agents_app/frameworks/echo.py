"""The built-in ``echo`` framework: replies ``echo[turns=T]: <message>``, ``T`` counting the session's
user messages, this one included; ``config.delay_s`` (0 to 60) makes it wait like a slow model.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from agents_app.frameworks.base import AgentLike, ConfigProblems, Framework, check_unknown_keys
from sessions_app.core import SessionView

MAX_DELAY_S = 60
WORDS = re.compile(r"\S+\s*")


class EchoFramework(Framework):
    name = "echo"
    window = 0  # it counts the user messages; it reads none of them

    def config_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "delay_s": {"type": "number", "minimum": 0, "maximum": MAX_DELAY_S, "description": "Seconds to wait."}
            },
        }

    def check_config(self, config: dict[str, Any], problems: ConfigProblems) -> None:
        check_unknown_keys(config, {"delay_s"}, self.name, problems)
        delay = config.get("delay_s", 0)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_DELAY_S:
            problems.add("delay_s", f"must be a number from 0 to {MAX_DELAY_S}")

    async def run(self, agent: AgentLike, session: SessionView, message: str) -> str:
        delay = float(agent.config.get("delay_s", 0) or 0)
        if delay:
            await asyncio.sleep(delay)
        reply = f"echo[turns={session.count('user') + 1}]: {message}"
        for word in WORDS.findall(reply):  # streamed word by word, each with the spaces after it
            session.emit_delta(word)
        return reply
