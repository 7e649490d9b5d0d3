"""``chat [--agent NAME] [--tenant SLUG] [--session ID] [--user ID]``: talk to an agent.

Without ``--session`` a new session is made for the user and its id printed, so that a later
``chat --session ID`` carries on the same conversation. The reply is printed as the agent
produces it (any framework: the run's ``delta`` events), and ``/agent NAME`` hands the rest of
the conversation to another agent of the tenant, on the same session.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.http import Http404

from agents_app.errors import RunFailed, RunStopped
from agents_app.runs.events import ENDS
from agents_app.services import run_start
from sessions_app.core import new_session_id
from sessions_app.models import Tenant
from sessions_app.stores.base import Event, StoreError

EXIT_WORDS = {"/quit", "/exit", "quit", "exit"}


class Command(BaseCommand):
    help = "Chat with an agent in the terminal. /agent NAME switches agents; an empty line or /quit ends it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--agent", default="echo")
        parser.add_argument("--tenant", default="demo")
        parser.add_argument("--session", default=None, help="carry on this session (default: a new one)")
        parser.add_argument("--user", default=None, help="your user id (default: your login name)")

    def handle(self, *args: Any, agent: str, tenant: str, session: str | None, user: str | None, **opts: Any) -> None:
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"no tenant {tenant!r}; make one with: python manage.py create_tenant {tenant}")
        if not found.agents.filter(name=agent).exists():
            raise CommandError(f"tenant {tenant!r} has no agent {agent!r}")
        user = user or getpass.getuser()
        if session is None:
            session = new_session_id()
            self.stdout.write(f"new session {session} for user {user}")
        self.stdout.write(f"talking to {agent!r}; /agent NAME switches agents, an empty line or /quit ends.")
        interactive = sys.stdin.isatty()
        with asyncio.Runner() as loop:  # one loop for the whole chat: its model connections stay open
            while True:
                if interactive:
                    self.stdout.write("you> ", ending="")
                    self.stdout.flush()
                line = sys.stdin.readline()
                if not line or line.strip() in EXIT_WORDS or not line.strip():
                    break
                if line.startswith("/agent"):
                    agent = self._switch(found, agent, line.removeprefix("/agent").strip())
                    continue
                request = {"tenant": found, "agent_name": agent, "session_id": session, "user_id": user}
                try:
                    loop.run(self._turn(agent, message=line.rstrip("\n"), **request))
                except (StoreError, RunStopped, RunFailed) as exc:
                    self.stderr.write(f"error: {exc}")
        self.stdout.write(f"session {session}")

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

    async def _turn(self, agent: str, **request: Any) -> None:
        """Run one message and print the reply as it comes; raise what stopped the run."""
        events: asyncio.Queue[Event] = asyncio.Queue()
        try:
            run, task = await run_start(listener=events, **request)
        except Http404:
            raise CommandError(f"the tenant has no agent {agent!r}") from None
        if task is None:  # cannot happen without an Idempotency-Key; kept for the contract
            self.stdout.write(f"{agent}> {run.result}")
            return
        self.stdout.write(f"{agent}> ", ending="")
        printed = False
        while True:
            event = await _next(events, task)
            if event is None or event.kind in ENDS:
                break
            if event.kind == "delta":
                self.stdout.write(event.data["text"], ending="")
                self.stdout.flush()
                printed = True
        self.stdout.write("")
        await task  # the run's end: raises what stopped it
        if not printed and run.result:
            self.stdout.write(run.result)


async def _next(events: asyncio.Queue[Event], task: asyncio.Task[Any]) -> Event | None:
    """The next event of the run, or None once its task ended with no event left."""
    if not events.empty():
        return events.get_nowait()
    getter = asyncio.ensure_future(events.get())
    await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
    if getter.done():
        return getter.result()
    getter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await getter
    return events.get_nowait() if not events.empty() else None
