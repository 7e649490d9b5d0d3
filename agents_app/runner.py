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
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any, TypedDict, Unpack

from django.conf import settings

from agents_app.compaction.window import COMPACTION_SCOPE, compacted, latest_summary, uncovered
from agents_app.errors import RunCancelled, RunTimedOut, SessionExpired, SessionPaused
from agents_app.frameworks import AgentLike, Reply, Usage, framework_loaded, get_framework
from agents_app.frameworks.base import Pause, Resume
from agents_app.pauses import PAUSE_SCOPE, cleared_state, marker_state, pause_from_dict, pause_marker
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
    #: What the run waits for, when it paused (its ``reply`` is then empty).
    pause: Pause | None = None
    #: Entries of the history its latest summary does not cover, after the commit (0: replayed).
    uncovered: int = 0


class RunOptions(TypedDict, total=False):
    """The options of ``Runner.execute`` and ``Runner.execute_resume`` (see ``execute``)."""

    wait: float | None
    store: SessionStore | None
    run_id: str | None
    commit_id: str | None
    cancelled: Cancellation | None
    time_limit: float | None
    events: RunEvents | None
    indexed: int
    paused_elsewhere: Callable[[str], Awaitable[bool]] | None


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
        """Run ``agent`` on ``session`` with ``prompt``; return the reply (the docs' API). An agent
        that pauses for a person raises ``RuntimeError``: ``execute`` and ``execute_resume`` take pauses."""
        store = session._store or self.store
        outcome = await self.execute(agent, session.key, prompt, store=store)
        if outcome.pause is not None:
            raise RuntimeError("the agent paused for a person: use Runner.execute and Runner.execute_resume")
        return outcome.reply

    async def execute(
        self,
        agent: AgentLike,
        key: SessionKey,
        prompt: str,
        *,
        replay: bool = True,
        **options: Unpack[RunOptions],
    ) -> RunOutcome:
        """Run under the session's lock and commit the exchange, or raise and commit nothing.

        With ``run_id`` the commit records the run (under ``commit_id``, by default the run's id),
        and (with ``replay``) a run that committed before returns its stored outcome without
        running again. ``cancelled`` set stops the adapter (``RunCancelled``), and so does
        ``time_limit`` (``RunTimedOut``). Raises the store's errors (``SessionBusy``,
        ``StoreUnavailable``, ``VersionConflict``, ``RunRevoked``) and the adapter's. ``events``
        gets the ``run`` event and the reply's deltas. ``indexed``: the messages the index counts;
        a store without the session then raises ``SessionExpired``.

        An adapter that returns a ``Pause`` has the user's message, its items and its state
        committed with the session's pause marker (``agents_app.pauses``), and the lock released:
        the outcome's ``pause`` says what the run waits for. While another run's marker is on the
        session, the run raises ``SessionPaused``, unless ``paused_elsewhere(run_id)`` (awaited)
        says that run is no longer paused: its stale marker is then cleared with this commit.
        """
        framework = get_framework(agent.framework)
        return await self._execute(
            agent, key, lambda view: framework.run(agent, view, prompt), prompt=prompt, replay=replay, **options
        )

    async def execute_resume(
        self, agent: AgentLike, key: SessionKey, pause: Pause, answer: Resume, **options: Unpack[RunOptions]
    ) -> RunOutcome:
        """Go on with a paused run (``run_id``, committing under ``commit_id``) given a person's
        ``answer``: the framework's ``resume`` under the session's lock, then the commit of its
        items and reply (the marker cleared), or of a new pause. Options and errors as ``execute``;
        a resume that committed before is replayed."""
        framework = get_framework(agent.framework)
        return await self._execute(
            agent, key, lambda view: framework.resume(agent, view, pause, answer), prompt=None, replay=True, **options
        )

    async def _execute(
        self,
        agent: AgentLike,
        key: SessionKey,
        work: Callable[[SessionView], Coroutine[Any, Any, str | Reply | Pause]],
        *,
        prompt: str | None,
        replay: bool,
        wait: float | None = None,
        store: SessionStore | None = None,
        run_id: str | None = None,
        commit_id: str | None = None,
        cancelled: Cancellation | None = None,
        time_limit: float | None = None,
        events: RunEvents | None = None,
        indexed: int = 0,
        paused_elsewhere: Callable[[str], Awaitable[bool]] | None = None,
    ) -> RunOutcome:
        store = store or self.store
        commit_id = commit_id or run_id
        framework = get_framework(agent.framework)
        await framework_loaded(framework)  # before the lock: a first run here imports its library
        lock, snapshot = await self._acquire_and_load(
            store,
            key,
            wait=self.wait if wait is None else wait,
            scopes=(SHARED_SCOPE, agent.name, PAUSE_SCOPE, COMPACTION_SCOPE),
            window=self._window_of(framework.window_for(agent.config)),
            run_id=commit_id if replay else None,
        )
        held = True
        keep_alive = Every(lock.lease / 3, partial(self._renew, lock))
        try:
            marker = pause_marker(snapshot)
            if commit_id is not None and replay and snapshot.run_committed is not None:
                return await blocking(self._replay, store, key, snapshot, commit_id, marker)
            if indexed > 0 and not snapshot.exists:
                raise SessionExpired(key.session_id, indexed)
            clear = marker is not None
            if marker is not None and marker.get("run_id") != run_id:
                other = str(marker.get("run_id"))
                if paused_elsewhere is None or await paused_elsewhere(other):
                    raise SessionPaused(other)
            shown = compacted(snapshot, framework.shown_for(agent.config))  # from the latest summary on
            view = SessionView(shown, agent.name, key=key, on_delta=events.delta if events else None, run_id=run_id)
            if events is not None:
                events.started()
            asked_at = time.time()
            answer = await self._adapter(work(view), cancelled, time_limit)
            asked = (
                [Message(role="user", content=prompt, agent=agent.name, created_at=asked_at)]
                if prompt is not None
                else []
            )
            state = dict(view.changes())
            pause = answer if isinstance(answer, Pause) else None
            if pause is not None:
                reply, usage, messages = "", None, [*asked, *view.items]
                state[PAUSE_SCOPE] = marker_state(run_id=run_id, commit_id=commit_id, pause=pause)
            else:
                if isinstance(answer, Reply):
                    reply, usage, author = answer.text, answer.usage, answer.agent or agent.name
                else:
                    reply, usage, author = answer, None, agent.name
                if events is not None and not view.streamed:
                    events.delta(reply)
                messages = [*asked, *view.items, Message(role="assistant", content=reply, agent=author)]
                if clear:
                    state[PAUSE_SCOPE] = cleared_state()
            await keep_alive.stop()  # the adapter is done: the lease covers the commit
            commit = await blocking(
                store.commit_and_release,
                lock,
                expected_version=snapshot.version,
                append=messages,
                state=state,
                run_id=commit_id,
            )
            held = False
            left = uncovered(commit.total, latest_summary(snapshot))
            return RunOutcome(reply=reply, commit=commit, usage=usage, pause=pause, uncovered=left)
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
    def _replay(
        store: SessionStore, key: SessionKey, snapshot: Snapshot, commit_id: str, marker: dict[str, Any] | None
    ) -> RunOutcome:
        """The outcome of the run that already committed (``snapshot.run_committed``), read back:
        the pause its marker names, or its reply, the first text message from the assistant after
        the user's, past its items."""
        commit = CommitResult(snapshot.version, snapshot.total, dict(snapshot.role_counts))
        if marker is not None and marker.get("commit_id") == commit_id:
            return RunOutcome(reply="", commit=commit, replayed=True, pause=pause_from_dict(marker["pause"]))
        start, reply = snapshot.run_committed or 0, ""
        while page := store.history(key, start=start, limit=50):
            found = next((m for m in page if m.is_text and m.role == "assistant"), None)
            if found is not None:
                reply = found.content
                break
            start += len(page)
        return RunOutcome(reply=reply, commit=commit, replayed=True)

    @staticmethod
    async def _adapter(
        work: Coroutine[Any, Any, str | Reply | Pause], cancelled: Cancellation | None, limit: float | None
    ) -> str | Reply | Pause:
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
