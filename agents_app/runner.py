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
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings

from agents_app.frameworks import AgentLike, get_framework
from sessions_app.core import Session, SessionView
from sessions_app.stores import get_store
from sessions_app.stores.base import (
    SHARED_SCOPE,
    CommitResult,
    Lock,
    LockLost,
    Message,
    SessionKey,
    SessionStore,
    Snapshot,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


class RunStopped(Exception):
    """The run was stopped before it committed: nothing of it reached the session."""


class RunCancelled(RunStopped):
    """``cancelled`` was set while the adapter worked."""


class RunTimedOut(RunStopped):
    """The adapter took longer than ``time_limit``."""


@dataclass(frozen=True)
class RunOutcome:
    reply: str
    commit: CommitResult
    #: True when the run had committed before (its worker died after the commit): nothing ran.
    replayed: bool = False


class Runner:
    def __init__(
        self,
        store: SessionStore | None = None,
        *,
        window: int | None = None,
        lease: float | None = None,
        wait: float | None = None,
        offload: bool = True,
    ) -> None:
        """Unset options follow ``settings.AK_SESSION`` (WINDOW, LOCK_LEASE, LOCK_WAIT).

        ``offload``: run the store's blocking calls in threads, so that other coroutines of the
        loop go on meanwhile (the Python API, where one loop may serve many sessions). A loop
        that serves one run (a worker's task, a request) calls them directly: a thread hop costs
        more than a store round trip.
        """
        self._store = store
        self._window, self._lease, self._wait = window, lease, wait
        self.offload = offload

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
        run_id: str | None = None,
        replay: bool = True,
        cancelled: asyncio.Event | None = None,
        time_limit: float | None = None,
    ) -> RunOutcome:
        """Run under the session's lock and commit the exchange, or raise and commit nothing.

        With ``run_id`` the commit records the run, and (with ``replay``) a run that committed
        before (its worker died before it could say so) returns its stored reply without running
        again. Setting
        ``cancelled`` stops the adapter at its next ``await`` (``RunCancelled``); so does
        ``time_limit`` seconds passing (``RunTimedOut``). Raises the store's errors
        (``SessionBusy``, ``StoreUnavailable``, ``VersionConflict`` after a lapsed lease) and the
        adapter's.
        """
        store = store or self.store
        framework = get_framework(agent.framework)
        lock, snapshot = await self._io(
            store.acquire_and_load,
            key,
            lease=self.lease,
            wait=self.wait if wait is None else wait,
            scopes=(SHARED_SCOPE, agent.name),
            window=self.window,
        )
        held = True
        heartbeat = asyncio.create_task(self._keep_alive(lock))
        try:
            if run_id is not None and replay:
                replayed = await self._io(self._replay, store, key, run_id, snapshot)
                if replayed is not None:
                    return replayed
            view = SessionView(snapshot, agent.name)
            asked_at = time.time()
            reply = await self._adapter(framework.run(agent, view, prompt), cancelled, time_limit)
            messages = [
                Message(role="user", content=prompt, agent=agent.name, created_at=asked_at),
                Message(role="assistant", content=reply, agent=agent.name),
            ]
            await _stopped(heartbeat)  # the adapter is done: the lease covers the commit
            commit = await self._io(
                store.commit_and_release,
                lock,
                expected_version=snapshot.version,
                append=messages,
                state=view.changes(),
                run_id=run_id,
            )
            held = False
            return RunOutcome(reply=reply, commit=commit)
        finally:
            await _stopped(heartbeat)
            if held:
                with contextlib.suppress(Exception):
                    await self._io(lock.release)

    async def _io(self, call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if self.offload:
            return await asyncio.to_thread(call, *args, **kwargs)
        return call(*args, **kwargs)

    @staticmethod
    def _replay(store: SessionStore, key: SessionKey, run_id: str, snapshot: Snapshot) -> RunOutcome | None:
        """The outcome of a run that already committed, read back from the store; else None."""
        first = store.committed(key, run_id)
        if first is None:
            return None
        exchange = store.history(key, start=first, limit=2)
        reply = next((m.content for m in exchange if m.role == "assistant"), "")
        commit = CommitResult(snapshot.version, snapshot.total, dict(snapshot.role_counts))
        return RunOutcome(reply=reply, commit=commit, replayed=True)

    @staticmethod
    async def _adapter(work: Coroutine[Any, Any, str], cancelled: asyncio.Event | None, limit: float | None) -> str:
        """Await the adapter, unless ``cancelled`` is set or ``limit`` seconds pass first."""
        task = asyncio.ensure_future(work)
        waiter = asyncio.ensure_future(cancelled.wait()) if cancelled is not None else None
        try:
            done, _ = await asyncio.wait(
                {task} | ({waiter} if waiter else set()), timeout=limit, return_when="FIRST_COMPLETED"
            )
        finally:
            if waiter is not None:
                waiter.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        if cancelled is not None and cancelled.is_set():
            raise RunCancelled("the run was cancelled")
        raise RunTimedOut(f"the run took longer than {limit:g} s")

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


async def _stopped(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it has stopped."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


runner = Runner()
