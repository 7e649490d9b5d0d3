"""A run that pauses, driven step by step as the runner drives it, for the adapters' own tests.

Each step reads the session back from the store into a view of its own (as the process that
resumes a run does: nothing is kept in memory between steps), calls the framework's ``run`` or
``resume`` and commits what it wrote: at a pause, the user's message, the items and the state; at
the end, the items, the reply and the state (the user's message too when the run did not pause).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from agents_app.frameworks import AgentSpec, Pause, Reply, Resume, get_framework
from sessions_app.core import SessionView
from sessions_app.stores import get_store
from sessions_app.stores.base import SHARED_SCOPE, Message, SessionKey


@dataclass
class Steps:
    agent: AgentSpec
    key: SessionKey
    #: The reply's pieces, when the run is streamed (``emit_delta``), one list per step.
    streamed: list[list[str]] | None = None

    async def run(self, message: str) -> Reply | Pause | str:
        return await self._step(lambda framework, view: framework.run(self.agent, view, message), message)

    async def resume(self, pause: Pause, answer: Resume) -> Reply | Pause | str:
        return await self._step(lambda framework, view: framework.resume(self.agent, view, pause, answer), None)

    def view(self) -> SessionView:
        store = get_store()
        framework = get_framework(self.agent.framework)
        window = framework.window_for(self.agent.config)
        snapshot = store.load(self.key, scopes=(SHARED_SCOPE, self.agent.name), window=50 if window is None else window)
        pieces: list[str] | None = None
        if self.streamed is not None:
            pieces = []
            self.streamed.append(pieces)
        return SessionView(
            snapshot, self.agent.name, key=self.key, on_delta=pieces.append if pieces is not None else None
        )

    async def _step(self, call: Any, message: str | None) -> Reply | Pause | str:
        view = self.view()
        answer = await call(get_framework(self.agent.framework), view)
        messages = []
        if message is not None:
            messages.append(Message("user", message, self.agent.name, created_at=time.time()))
        messages += view.items
        if not isinstance(answer, Pause):
            text, author = (
                (answer.text, answer.agent or self.agent.name) if isinstance(answer, Reply) else (answer, None)
            )
            messages.append(Message("assistant", text, author or self.agent.name))
        get_store().commit(self.key, expected_version=view.snapshot.version, append=messages, state=view.changes())
        return answer
