"""The one place a run happens: lock the session, load a window, run the adapter, commit.

    from agents_app.runner import runner
    reply = await runner.run(AgentSpec("echo", "echo"), Session(id="s1", tenant="demo"), "hi")

A run reads the agent's own state, the shared state and the last ``window`` messages, and
appends only what is new, so its cost does not grow with the conversation. The lock serializes
runs on one session across processes; its lease is renewed while the adapter works, and the
version check at commit makes a run whose lease lapsed fail (``VersionConflict``) instead of
overwriting another's work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from django.conf import settings

from agents_app.frameworks import AgentLike, get_framework
from sessions_app.core import Session, SessionView
from sessions_app.stores import get_store
from sessions_app.stores.base import SHARED_SCOPE, CommitResult, Lock, LockLost, Message, SessionKey, SessionStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    reply: str
    commit: CommitResult


class Runner:
    def __init__(
        self,
        store: SessionStore | None = None,
        *,
        window: int | None = None,
        lease: float | None = None,
        wait: float | None = None,
    ) -> None:
        """Unset options follow ``settings.AK_SESSION`` (WINDOW, LOCK_LEASE, LOCK_WAIT)."""
        self._store = store
        self._window, self._lease, self._wait = window, lease, wait

    @property
    def window(self) -> int:
        return settings.AK_SESSION["WINDOW"] if self._window is None else self._window

    @property
    def lease(self) -> float:
        return settings.AK_SESSION["LOCK_LEASE"] if self._lease is None else self._lease

    @property
    def wait(self) -> float:
        return settings.AK_SESSION["LOCK_WAIT"] if self._wait is None else self._wait

    @property
    def store(self) -> SessionStore:
        return self._store or get_store()

    async def run(self, agent: AgentLike, session: Session, prompt: str) -> str:
        """Run ``agent`` on ``session`` with ``prompt``; return the reply (the docs' API)."""
        store = session._store or self.store
        outcome = await self.execute(agent, session.key, prompt, store=store)
        return outcome.reply

    async def execute(
        self,
        agent: AgentLike,
        key: SessionKey,
        prompt: str,
        *,
        wait: float | None = None,
        store: SessionStore | None = None,
    ) -> RunOutcome:
        """Run under the session's lock. Raises the store's errors (``SessionBusy`` and others)."""
        store = store or self.store
        framework = get_framework(agent.framework)
        lock = await asyncio.to_thread(store.acquire, key, lease=self.lease, wait=self.wait if wait is None else wait)
        heartbeat = asyncio.create_task(self._keep_alive(lock))
        try:
            snapshot = await asyncio.to_thread(store.load, key, scopes=(SHARED_SCOPE, agent.name), window=self.window)
            view = SessionView(snapshot, agent.name)
            asked_at = time.time()
            reply = await framework.run(agent, view, prompt)
            messages = [
                Message(role="user", content=prompt, agent=agent.name, created_at=asked_at),
                Message(role="assistant", content=reply, agent=agent.name),
            ]
            commit = await asyncio.to_thread(
                store.commit, key, expected_version=snapshot.version, append=messages, state=view.changes()
            )
            return RunOutcome(reply=reply, commit=commit)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            with contextlib.suppress(Exception):
                await asyncio.to_thread(lock.release)

    async def _keep_alive(self, lock: Lock) -> None:
        """Renew the lease every third of it while the run goes on."""
        while True:
            await asyncio.sleep(lock.lease / 3)
            try:
                await asyncio.to_thread(lock.renew)
            except LockLost:
                logger.warning("lease on session %s lapsed; the commit will be refused", lock.key.session_id)
                return
            except Exception:  # a blip: the next beat tries again, the lease still has 2/3 left
                logger.warning("could not renew the lease on session %s", lock.key.session_id, exc_info=True)


runner = Runner()
