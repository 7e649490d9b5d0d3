"""``serve`` (``make run``): gunicorn (as deployed) and a Celery worker with its beat, as child
processes; Ctrl-C or SIGTERM stops both, and one dying stops the other. With the ``in_memory``
store, this process keeps the store and serves it to both (``memory_socket``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from sessions_app.models import Session
from sessions_app.stores import build_store
from sessions_app.stores.memory_socket import MemoryStoreServer


class Command(BaseCommand):
    help = (
        "Serve the API and admin (gunicorn, as deployed) and run a Celery worker with its beat (the sweeper); with the"
        " in-memory store, keep it here and share it with both. Ctrl-C stops both."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument(
            "--concurrency", type=int, default=100, help="runs the worker carries at once (default 100)"
        )

    def handle(self, *args: Any, addrport: str, concurrency: int, **options: Any) -> None:
        python, env, store_server = sys.executable, dict(os.environ), None
        if settings.AK_SESSION["TYPE"] == "in_memory" and not settings.AK_SESSION["IN_MEMORY"]["SOCKET"]:
            store_server = MemoryStoreServer(build_store("in_memory")).start()
            env["AK_SESSION__IN_MEMORY__SOCKET"] = store_server.path
            self.stdout.write(
                "the in-memory session store is kept by this process for the server and the worker;"
                f" AK_SESSION__IN_MEMORY__SOCKET={store_server.path} lets another (manage.py chat) share it"
            )
            remembered = Session.objects.filter(message_count__gt=0).count()
            if remembered:
                self.stdout.write(
                    f"it starts empty: the {remembered} sessions with messages in the index lost their history"
                    " with the last run; each says so at its next run (409 session_expired) or when its thread"
                    " is opened in the console, and then starts over"
                )
        commands = [
            [python, "-m", "celery", "-A", "akplatform", "worker", "--beat", "--loglevel=INFO", f"-c{concurrency}"],
            [python, "-m", "gunicorn", "akplatform.asgi:application", "-b", addrport, "-w", "1"],  # gunicorn.conf.py
        ]
        # Our own interpreter and fixed command lines.
        children = [subprocess.Popen(command, env=env, cwd=settings.BASE_DIR) for command in commands]  # noqa: S603
        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 15
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        if store_server is not None:
            store_server.stop()
        self.stdout.write("stopped the server and the worker")
