"""``serve``: the development platform in one command, the API and admin plus a Celery worker
(with an embedded beat, which runs the sweeper and the expiry purge).

``make run`` calls it. Both run as child processes; Ctrl-C (or SIGTERM) stops both, and if one
of them dies the other is stopped too, so nothing is left running behind the terminal.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Serve the API and admin (runserver) and run a Celery worker with its beat (the sweeper); Ctrl-C stops both."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")

    def handle(self, *args: Any, addrport: str, concurrency: int, **options: Any) -> None:
        python = sys.executable
        children = [
            subprocess.Popen(
                [python, "-m", "celery", "-A", "akplatform", "worker", "--beat", "--loglevel=INFO", f"-c{concurrency}"]
            ),
            subprocess.Popen([python, "manage.py", "runserver", addrport, "--noreload"]),
        ]
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
        self.stdout.write("stopped the server and the worker")
