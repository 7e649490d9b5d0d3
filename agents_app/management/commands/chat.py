"""``chat [--agent NAME] [--tenant SLUG] [--session ID] [--user ID]``: talk to an agent. A session
whose history the store no longer has is said so and starts over; log lines go to stderr between
replies, never inside one."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import logging
import logging.handlers
import sys
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.http import Http404

from agents_app.errors import RunFailed, RunStopped, SessionExpired
from agents_app.models import Run
from agents_app.runs.cancel import run_cancel
from agents_app.runs.submit import RunRequest, run_submit
from sessions_app.core import new_session_id
from sessions_app.models import Session, Tenant
from sessions_app.selectors import session_key
from sessions_app.services import session_history_lost
from sessions_app.stores import get_store
from sessions_app.stores.base import StoreError
from sessions_app.stores.memory import InMemoryStore
from sessions_app.stores.memory_socket import SocketMemoryStore

EXIT_WORDS = {"/quit", "/exit", "quit", "exit"}
#: The least level of the log lines shown, by ``--verbosity``.
LOG_LEVELS = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO, 3: logging.DEBUG}


def store_description() -> str:
    """One line on the session store the chat uses, and whether a server shares it."""
    store = get_store()
    if isinstance(store, InMemoryStore):
        return (
            "store: in_memory, this process's own: it starts empty and is not shared with a server (`make run`"
            " prints the AK_SESSION__IN_MEMORY__SOCKET=... that shares its store; set it to talk on its sessions)"
        )
    if isinstance(store, SocketMemoryStore):
        return f"store: in_memory, shared over {store.socket}"
    return f"store: {store.name}, shared with every process configured like this one"


@contextlib.contextmanager
def logs_between_turns(level: int) -> Iterator[Callable[[], None]]:
    """Hold the log records of the root logger's handlers (those at ``level`` or above; the rest
    are dropped) until the function yielded is called, which writes them: between turns, never
    inside a reply. On the way out, what is held is written and the handlers are as they were."""
    root = logging.getLogger()
    targets = list(root.handlers)
    held = []
    for target in targets:
        # flushLevel above CRITICAL: a record never writes the held ones by itself, only a call does
        handler = logging.handlers.MemoryHandler(10_000, flushLevel=logging.CRITICAL + 1, target=target)
        handler.setLevel(level)
        held.append(handler)
        root.removeHandler(target)
        root.addHandler(handler)

    def flush() -> None:
        for handler in held:
            handler.flush()

    try:
        yield flush
    finally:
        for target, handler in zip(targets, held, strict=True):
            root.removeHandler(handler)
            handler.close()  # writes what it still holds
            root.addHandler(target)


class Command(BaseCommand):
    help = (
        "Chat with an agent in the terminal. /agent NAME switches agents; /quit, /exit, Ctrl-D or Ctrl-C ends it"
        " (an empty line is ignored). Says which session store it uses. Log lines (warnings; -v 2: INFO too) go"
        " to stderr between replies."
    )

    _running: tuple[Run, asyncio.Task[Any]] | None = None  # the run of the turn under way, and its task

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--agent", default="echo", help="the agent to talk to (default: echo)")
        parser.add_argument("--tenant", default="demo", help="the tenant's slug (default: demo)")
        parser.add_argument("--session", default=None, help="carry on this session (default: a new one)")
        parser.add_argument("--user", default=None, help="your user id (default: your login name)")

    def handle(self, *args: Any, agent: str, tenant: str, session: str | None, user: str | None, **opts: Any) -> None:
        level = LOG_LEVELS.get(opts.get("verbosity", 1), logging.DEBUG)
        with logs_between_turns(level) as self._flush_logs:
            try:
                found, session = self._start(agent=agent, tenant=tenant, session=session, user=user)
            except DatabaseError as exc:
                raise CommandError(f"the database is not ready ({exc}); run: python manage.py migrate") from None
            except StoreError as exc:
                raise CommandError(f"the session store did not answer: {exc}") from None
            finally:
                self._flush()
            try:
                self._converse(found, agent, session, user or getpass.getuser())
            except KeyboardInterrupt:
                self.stdout.write("")
            self.stdout.write(f"session {session}")
            self._flush()

    def _start(self, *, agent: str, tenant: str, session: str | None, user: str | None) -> tuple[Tenant, str]:
        """Check what the chat needs and print its banner; the tenant and the session id."""
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"no tenant {tenant!r}; make one with: python manage.py create_tenant {tenant}")
        if not found.agents.filter(name=agent).exists():
            raise CommandError(f"tenant {tenant!r} has no agent {agent!r}")
        get_store().ping()  # a store that does not answer (a server gone with its socket) stops the chat here
        if session is None:
            session = new_session_id()
            self.stdout.write(f"new session {session} for user {user or getpass.getuser()}")
            self.stdout.write(store_description())
        else:
            self.stdout.write(store_description())
            self._check_history(found, session)
        self.stdout.write(
            f"talking to {agent!r}; /agent NAME switches agents; /quit, /exit, Ctrl-D or Ctrl-C ends"
            " (an empty line does nothing)."
        )
        return found, session

    def _check_history(self, tenant: Tenant, session_id: str) -> None:
        """A session the index counts messages for must have them in the store: refused when the
        store is this process's own (it is not the server's), else the index follows the store."""
        row = Session.objects.select_related("tenant").filter(tenant=tenant, session_id=session_id).first()
        if row is None or row.message_count == 0 or get_store().load(session_key(row), window=0).exists:
            return
        if isinstance(get_store(), InMemoryStore):  # this process's own, not the server's
            raise CommandError(
                f"session {session_id!r} has {row.message_count} messages in the index, but not in this process's"
                " own in-memory store, which is not the server's: set AK_SESSION__IN_MEMORY__SOCKET to the socket"
                " `make run` printed to carry it on, or leave out --session for a new one"
            )
        lost = SessionExpired(session_id, row.message_count)
        session_history_lost(session=row, count=lost.count)
        self._notice(lost)

    def _notice(self, lost: SessionExpired) -> None:
        self.stdout.write(
            f"notice: the history of session {lost.session_id!r} ({lost.count} messages) is no longer in the session"
            " store (it expired there, or the store was restarted): the conversation starts over, empty."
        )

    def _converse(self, found: Tenant, agent: str, session: str, user: str) -> None:
        interactive = sys.stdin.isatty()
        with asyncio.Runner() as loop:  # one loop for the whole chat: its model connections stay open
            while True:
                if interactive:
                    self.stdout.write("you> ", ending="")
                    self.stdout.flush()
                line = sys.stdin.readline()
                if not line and interactive:  # Ctrl-D: the terminal did not end the prompt's line
                    self.stdout.write("")
                if not line or line.strip() in EXIT_WORDS:  # "": Ctrl-D (the end of the input)
                    break
                if not line.strip():
                    continue
                if line.startswith("/agent"):
                    agent = self._switch(found, agent, line.removeprefix("/agent").strip())
                    self._flush()
                    continue
                request = RunRequest(agent, line.rstrip("\n"), session_id=session, user_id=user, mode="stream")
                self._send(loop, found, request)

    def _send(self, loop: asyncio.Runner, tenant: Tenant, request: RunRequest) -> None:
        """One turn; a session whose history vanished is said so and the message sent again (the
        index now says the session is empty, so it runs on a new start)."""
        for attempt in (1, 2):
            self._running = None
            try:
                loop.run(self._turn(tenant, request))
                return
            except SessionExpired as exc:
                self._notice(exc)
                if attempt == 2:
                    self.stderr.write(f"error: {exc}")
            except (StoreError, RunStopped, RunFailed) as exc:
                self.stderr.write(f"error: {exc}")
                return
            except KeyboardInterrupt:
                self._stop(loop)
                raise
            finally:
                self._flush()

    def _stop(self, loop: asyncio.Runner) -> None:
        """Ctrl-C during a reply: the run is cancelled (it commits nothing) before the chat ends."""
        if self._running is None:
            return
        run, task = self._running
        self.stdout.write("")
        run_cancel(run=run)
        with contextlib.suppress(Exception, KeyboardInterrupt):  # a second Ctrl-C leaves at once
            loop.run(asyncio.wait({task}, timeout=2 * settings.AK_RUN["HEARTBEAT"]))

    def _flush(self) -> None:
        """Write the held log lines, after what the chat wrote (each on its own lines)."""
        self.stdout.flush()
        self._flush_logs()

    def _switch(self, tenant: Tenant, current: str, name: str) -> str:
        """The agent ``/agent NAME`` asks for, or ``current`` when the tenant has none of that name."""
        if not name:
            self.stdout.write(f"talking to {current!r}; /agent NAME switches")
            return current
        if not tenant.agents.filter(name=name).exists():
            self.stderr.write(f"no agent {name!r}; still talking to {current!r}")
            return current
        self.stdout.write(f"talking to {name!r} now, on the same session")
        return name

    async def _turn(self, tenant: Tenant, request: RunRequest) -> None:
        """Run one message and print the reply as it comes; raise what stopped the run."""
        try:
            submitted = await run_submit(request, tenant=tenant)
        except Http404:
            raise CommandError(f"the tenant has no agent {request.agent!r}") from None
        run, task = submitted.run, submitted.task
        if submitted.events is None or task is None:  # cannot happen without an Idempotency-Key
            self.stdout.write(f"{request.agent}> {run.result}")
            return
        self._running = (run, task)
        printed = False
        async for event in submitted.events:
            if event.kind == "delta":
                if not printed:
                    self.stdout.write(f"{request.agent}> ", ending="")
                self.stdout.write(event.data["text"], ending="")
                self.stdout.flush()
                printed = True
        if printed:
            self.stdout.write("")
        await task  # the run's end: raises what stopped it
        if run.status == Run.Status.PAUSED:  # it waits for a person: the API or the console answers
            self.stdout.write(f"(run {run.pk} waits for a person: {json.dumps(run.pause)}; POST /runs/{run.pk}/resume)")
        elif not printed and run.result:
            self.stdout.write(f"{request.agent}> {run.result}")
