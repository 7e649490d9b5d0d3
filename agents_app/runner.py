"""The one place a run happens: lock the session, load a window, run the adapter, commit.

    from agents_app.runner import runner
    reply = await runner.run(AgentSpec("echo", "echo"), Session(id="s1", tenant="demo"), "hi")

A run reads the agent's own state, the shared state and the last ``window`` messages, and appends
only what is new. The lock serializes runs on one session across processes; its lease is renewed
while the adapter works, and the version check at commit makes a run whose lease lapsed fail
(``VersionConflict``) instead of overwriting another's work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.conf import settings

from agents_app.errors import RunCancelled, RunTimedOut, SessionExpired
from agents_app.frameworks import AgentLike, Reply, Usage, get_framework
from agents_app.runs.events import RunEvents
from infra.io_threads import blocking
from sessions_app.core import Session, SessionView
from sessions_app.stores import get_store
from sessions_app.stores.base import (
    SHARED_SCOPE,
    CommitResult,
    Lock,
    LockLost,
    Message,
    SessionBusy,
    SessionKey,
    SessionStore,
    Snapshot,
    backoff_delays,
)

logger = logging.getLogger(__name__)


class Cancellation:
    """Handed to ``Runner.execute`` by whoever watches a run: ``set()`` stops its adapter at the
    adapter's next ``await`` (the run then raises ``RunCancelled`` and commits nothing)."""

    def __init__(self) -> None:
        self._set = False
        self._adapter: asyncio.Future[Any] | None = None

    def set(self) -> None:
        self._set = True
        if self._adapter is not None:
            self._adapter.cancel()

    def is_set(self) -> bool:
        return self._set

    def attach(self, adapter: asyncio.Future[Any] | None) -> None:
        """The adapter's task to cancel when set (at once if it is set already); None: no more."""
        self._adapter = adapter
        if adapter is not None and self._set:
            adapter.cancel()


class Every:
    """Await ``work()`` every ``interval`` seconds on the running loop, one call at a time, until
    ``stop`` or until ``work`` returns False."""

    def __init__(self, interval: float, work: Callable[[], Coroutine[Any, Any, bool | None]]) -> None:
        self._task = asyncio.get_running_loop().create_task(self._repeat(interval, work))

    @staticmethod
    async def _repeat(interval: float, work: Callable[[], Coroutine[Any, Any, bool | None]]) -> None:
        await asyncio.sleep(interval)
        while await work() is not False:
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        """No more calls; a call under way is cancelled and waited for."""
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass(frozen=True)
class RunOutcome:
    reply: str
    commit: CommitResult
    #: True when the run had committed before (its worker died after the commit): nothing ran.
    replayed: bool = False
    #: Tokens the adapter reported, if it did.
    usage: Usage | None = None


class Runner:
    def __init__(
        self,
        store: SessionStore | None = None,
        *,
        window: int | None = None,
        lease: float | None = None,
        wait: float | None = None,
    ) -> None:
        """Unset options follow ``settings.AK_SESSION`` (WINDOW, LOCK_LEASE, LOCK_WAIT). The
        store's blocking calls go to the process's I/O threads (``infra.io_threads``): the loop
        goes on with other runs meanwhile."""
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
        run_id: str | None = None,
        replay: bool = True,
        cancelled: Cancellation | None = None,
        time_limit: float | None = None,
        events: RunEvents | None = None,
        indexed: int = 0,
    ) -> RunOutcome:
        """Run under the session's lock and commit the exchange, or raise and commit nothing.

        With ``run_id`` the commit records the run, and (with ``replay``) a run that committed
        before returns its stored reply without running again. ``cancelled`` set stops the adapter
        (``RunCancelled``), and so does ``time_limit`` (``RunTimedOut``). Raises the store's errors
        (``SessionBusy``, ``StoreUnavailable``, ``VersionConflict``, ``RunRevoked``) and the
        adapter's. ``events`` gets the ``run`` event and the reply's deltas. ``indexed``: the
        messages the index counts; a store without the session then raises ``SessionExpired``.
        """
        store = store or self.store
        framework = get_framework(agent.framework)
        lock, snapshot = await self._acquire_and_load(
            store,
            key,
            wait=self.wait if wait is None else wait,
            scopes=(SHARED_SCOPE, agent.name),
            window=self._window_of(framework.window_for(agent.config)),
            run_id=run_id if replay else None,
        )
        held = True
        keep_alive = Every(lock.lease / 3, partial(self._renew, lock))
        try:
            if run_id is not None and replay and snapshot.run_committed is not None:
                return await blocking(self._replay, store, key, snapshot)
            if indexed > 0 and not snapshot.exists:
                raise SessionExpired(key.session_id, indexed)
            view = SessionView(snapshot, agent.name, key=key, on_delta=events.delta if events else None, run_id=run_id)
            if events is not None:
                events.started()
            asked_at = time.time()
            answer = await self._adapter(framework.run(agent, view, prompt), cancelled, time_limit)
            if isinstance(answer, Reply):
                reply, usage, author = answer.text, answer.usage, answer.agent or agent.name
            else:
                reply, usage, author = answer, None, agent.name
            if events is not None and not view.streamed:
                events.delta(reply)
            messages = [
                Message(role="user", content=prompt, agent=agent.name, created_at=asked_at),
                *view.items,
                Message(role="assistant", content=reply, agent=author),
            ]
            await keep_alive.stop()  # the adapter is done: the lease covers the commit
            commit = await blocking(
                store.commit_and_release,
                lock,
                expected_version=snapshot.version,
                append=messages,
                state=view.changes(),
                run_id=run_id,
            )
            held = False
            return RunOutcome(reply=reply, commit=commit, usage=usage)
        finally:
            await keep_alive.stop()
            if held:
                with contextlib.suppress(Exception):
                    await blocking(lock.release)

    def _window_of(self, wanted: int | None) -> int:
        return self.window if wanted is None else min(wanted, self.window)

    async def _acquire_and_load(
        self, store: SessionStore, key: SessionKey, *, wait: float, **load: Any
    ) -> tuple[Lock, Snapshot]:
        """``store.acquire_and_load``, waiting for a busy session on the loop, not in a thread:
        each try asks once (``wait=0``), and the pauses between tries are ``asyncio.sleep``."""
        delays = backoff_delays(wait, first=0.01, cap=0.25)
        while True:
            try:
                return await blocking(store.acquire_and_load, key, lease=self.lease, wait=0, **load)
            except SessionBusy:
                delay = next(delays, None)
                if delay is None:
                    raise
                await asyncio.sleep(delay)

    @staticmethod
    def _replay(store: SessionStore, key: SessionKey, snapshot: Snapshot) -> RunOutcome:
        """The outcome of the run that already committed (``snapshot.run_committed``), read back:
        its reply is the first text message from the assistant after the user's, past its items."""
        start, reply = snapshot.run_committed or 0, ""
        while page := store.history(key, start=start, limit=50):
            found = next((m for m in page if m.is_text and m.role == "assistant"), None)
            if found is not None:
                reply = found.content
                break
            start += len(page)
        commit = CommitResult(snapshot.version, snapshot.total, dict(snapshot.role_counts))
        return RunOutcome(reply=reply, commit=commit, replayed=True)

    @staticmethod
    async def _adapter(
        work: Coroutine[Any, Any, str | Reply], cancelled: Cancellation | None, limit: float | None
    ) -> str | Reply:
        """Await the adapter, unless ``cancelled`` is set or ``limit`` seconds pass first."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(work)
        timed_out = False

        def time_out() -> None:
            nonlocal timed_out
            timed_out = True
            task.cancel()

        timer = loop.call_later(limit, time_out) if limit is not None else None
        if cancelled is not None:
            cancelled.attach(task)
        try:
            reply = await task
        except (asyncio.CancelledError, Exception):
            if not timed_out and not (cancelled is not None and cancelled.is_set()):
                raise  # the adapter failed, or our caller was cancelled
            reply = ""  # the stop is what happened, however the adapter ended on its way out
        finally:
            if timer is not None:
                timer.cancel()
            if cancelled is not None:
                cancelled.attach(None)
        if cancelled is not None and cancelled.is_set():
            raise RunCancelled("the run was cancelled")
        if timed_out:
            raise RunTimedOut(f"the run took longer than {limit:g} s")
        return reply

    @staticmethod
    async def _renew(lock: Lock) -> bool:
        """Renew the lease (every third of it while the run goes on); False once it is lost."""
        try:
            await blocking(lock.renew)
        except LockLost:
            logger.warning("lease on session %s lapsed; the commit will be refused", lock.key.session_id)
            return False
        except Exception:  # a blip: the next beat tries again, the lease still has 2/3 left
            logger.warning("could not renew the lease on session %s", lock.key.session_id, exc_info=True)
        return True


runner = Runner()
