"""``chat [--agent NAME] [--tenant SLUG] [--session ID] [--user ID]``: talk to an agent.

Without ``--session`` a new session is made for the user and its id printed, so that a later
``chat --session ID`` carries on the same conversation.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.http import Http404

from agents_app.errors import RunFailed, RunStopped
from agents_app.services import run_sync
from sessions_app.core import new_session_id
from sessions_app.models import Tenant
from sessions_app.stores.base import StoreError

EXIT_WORDS = {"/quit", "/exit", "quit", "exit"}


class Command(BaseCommand):
    help = "Chat with an agent in the terminal. Empty line or /quit ends it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--agent", default="echo")
        parser.add_argument("--tenant", default="demo")
        parser.add_argument("--session", default=None, help="carry on this session (default: a new one)")
        parser.add_argument("--user", default=None, help="your user id (default: your login name)")

    def handle(self, *args: Any, agent: str, tenant: str, session: str | None, user: str | None, **opts: Any) -> None:
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"no tenant {tenant!r}; make one with: python manage.py create_tenant {tenant}")
        user = user or getpass.getuser()
        if session is None:
            session = new_session_id()
            self.stdout.write(f"new session {session} for user {user}")
        self.stdout.write(f"talking to {agent!r}; an empty line or /quit ends.")
        interactive = sys.stdin.isatty()
        while True:
            if interactive:
                self.stdout.write("you> ", ending="")
                self.stdout.flush()
            line = sys.stdin.readline()
            if not line or line.strip() in EXIT_WORDS or not line.strip():
                break
            try:
                run, _ = asyncio.run(
                    run_sync(
                        tenant=found, agent_name=agent, message=line.rstrip("\n"), session_id=session, user_id=user
                    )
                )
            except Http404:
                raise CommandError(f"tenant {tenant!r} has no agent {agent!r}") from None
            except (StoreError, RunStopped, RunFailed) as exc:
                self.stderr.write(f"error: {exc}")
                continue
            self.stdout.write(f"{agent}> {run.result}")
        self.stdout.write(f"session {session}")
