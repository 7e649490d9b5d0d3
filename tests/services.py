"""Real services for the tests: use what is reachable, start what is missing, stop what we started.

Also a command: ``python -m tests.services check`` says what the suite will use and, where a
binary is missing, installs it from the system's packages when it may, or says what to install.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reachable(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(port: int, *, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reachable("127.0.0.1", port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode} before listening on {port}")
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def wait_until_answered(url: str, *, timeout: float = 60.0) -> None:
    """Until ``url`` answers over HTTP, whatever its status: the application is loaded."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} does not answer after {timeout} s") from None
            time.sleep(0.1)


@dataclass
class Server:
    """A process the tests started, listening on ``port``."""

    args: list[str]
    port: int
    cwd: Path | None = None
    env: dict[str, str] | None = None
    log: Path | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, *, timeout: float = 20.0) -> Server:
        return self.spawn().ready(timeout=timeout)

    def spawn(self) -> Server:
        """Start the process without waiting for it (``ready`` waits): several start at once."""
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            self.args, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def ready(self, *, timeout: float = 20.0) -> Server:
        """Wait until it listens."""
        wait_for_port(self.port, timeout=timeout, proc=self.proc)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Process:
    """A process the tests started that listens on nothing (a Celery worker, beat): ready when
    ``ready_text`` shows in its log."""

    args: list[str]
    log: Path
    ready_text: str = ""
    cwd: Path | None = None
    env: dict[str, str] | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, *, timeout: float = 60.0) -> Process:
        return self.spawn().ready(timeout=timeout)

    def spawn(self) -> Process:
        """Start the process without waiting for it (``ready`` waits): several start at once."""
        out = open(self.log, "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            self.args, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def ready(self, *, timeout: float = 60.0) -> Process:
        """Wait until ``ready_text`` shows in its log."""
        assert self.proc is not None, "spawn() first"
        deadline = time.monotonic() + timeout
        while self.ready_text and self.ready_text not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args[:6]!r} exited with {self.proc.returncode}; see {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.args[:6]!r} not ready after {timeout} s; see {self.log}")
            time.sleep(0.1)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        Server.stop(self, sig, timeout)  # type: ignore[arg-type]  # same process-group handling

    def kill(self) -> None:
        """SIGKILL the whole process group: the worker and its pool children die at once."""
        self.stop(signal.SIGKILL, timeout=10)


def celery_worker(name: str, *, env: dict[str, str], log: Path, concurrency: int | None = None) -> Process:
    """A worker as deployed (the settings choose its pool and concurrency), unless ``concurrency``."""
    args = [sys.executable, "-m", "celery", "-A", "akplatform", "worker", f"--hostname={name}@%h", "--loglevel=INFO"]
    if concurrency is not None:
        args.append(f"--concurrency={concurrency}")
    args += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return Process(args=args, log=log, ready_text=" ready.", cwd=ROOT, env=env)


def celery_beat(*, env: dict[str, str], log: Path, schedule: Path) -> Process:
    args = [sys.executable, "-m", "celery", "-A", "akplatform", "beat", "--loglevel=INFO", f"--schedule={schedule}"]
    return Process(args=args, log=log, ready_text="beat: Starting", cwd=ROOT, env=env)


# --- RabbitMQ ------------------------------------------------------------------------------------

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


def rabbitmq_url(timeout: float = 60.0) -> str | None:
    """The RabbitMQ on 127.0.0.1:5672, started if it is installed and not running. Returns its URL,
    or None when there is none (``check`` installs it)."""
    if reachable("127.0.0.1", 5672):
        return RABBITMQ_URL
    if not shutil.which("rabbitmq-server"):
        return None
    subprocess.run(["rabbitmq-server", "-detached"], check=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reachable("127.0.0.1", 5672):
            return RABBITMQ_URL
        time.sleep(0.5)
    return None


def apt_install(*packages: str) -> None:
    """Debian's ``packages``, when we are root and have apt-get (``check`` only: no fixture installs)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=False, env=env)


# --- Redis ---------------------------------------------------------------------------------------


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


def redis_server(directory: Path, *, port: int | None = None, persistent: bool = False) -> Server:
    """A redis-server of our own. ``persistent``: an append-only file in ``directory`` survives a stop."""
    binary = redis_server_binary()
    if binary is None:
        raise RuntimeError("redis-server is not installed: apt-get install redis-server")
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory), "--save", ""]
    args += ["--appendonly", "yes", "--appendfsync", "always"] if persistent else ["--appendonly", "no"]
    return Server(args=args, port=port, log=directory / "redis.log")


# --- Chromium, for the browser tests ------------------------------------------------------------

#: Debian's packages: the browser and the chromedriver of the same version. No tool downloads one.
CHROMIUM_PACKAGES = ["chromium", "chromium-driver"]
#: Without the networking flags Chromium tries to reach Google's services and, on a closed network,
#: refuses connections; a fresh --user-data-dir is added per run.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_binaries() -> tuple[str | None, str | None]:
    """The Chromium and chromedriver binaries, or None for a missing one."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    return chromium, shutil.which("chromedriver")


# --- DynamoDB (moto's server) --------------------------------------------------------------------


def moto_server(directory: Path) -> Server:
    """moto's DynamoDB on a free port, atomic per request as DynamoDB is (``tests.dynamodb_server``)."""
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    return Server(
        args=[sys.executable, "-m", "tests.dynamodb_server", "127.0.0.1", str(port)],
        port=port,
        cwd=ROOT,
        log=directory / "moto.log",
    )


def check() -> int:
    """Install what the suite needs and the machine lacks (Debian's redis-server, RabbitMQ, Chromium
    and its driver, when we are root), start RabbitMQ, and report what the suite will use. The
    fixtures install nothing: this is ``make test``'s step before the suite."""
    started = time.monotonic()
    missing = [
        package
        for package, binary in [
            ("redis-server", "redis-server"),
            ("rabbitmq-server", "rabbitmq-server"),
            ("chromium", "chromium"),
            ("chromium-driver", "chromedriver"),
        ]
        if not shutil.which(binary) and not (binary == "chromium" and shutil.which("chromium-browser"))
    ]
    if missing:
        print(f"installing {' '.join(missing)}")
        apt_install(*missing)
    problems = []
    if reachable("127.0.0.1", 6379):
        print("redis: using the server on 127.0.0.1:6379 (and a redis-server of its own for outage tests)")
    if redis_server_binary():
        print(f"redis-server: {redis_server_binary()}")
    else:
        problems.append("redis-server is not installed and could not be: run `sudo apt-get install redis-server`")
    try:
        import moto.moto_server.werkzeug_app  # noqa: F401 - what tests.dynamodb_server serves
    except ImportError:
        problems.append("moto's server is missing: `pip install -r requirements-dev.txt` (moto[server])")
    else:
        print("dynamodb: moto's server will be started on a free port (tests.dynamodb_server)")
    if rabbitmq_url():
        print(f"rabbitmq: {RABBITMQ_URL}")
    else:
        problems.append(
            "RabbitMQ is not running on 127.0.0.1:5672 and could not be started: "
            "run `sudo apt-get install rabbitmq-server && sudo rabbitmq-server -detached`"
        )
    chromium, chromedriver = chromium_binaries()
    if chromium and chromedriver:
        print(f"chromium: {chromium} with {chromedriver} (browser tests)")
    else:
        problems.append(
            "Chromium or chromedriver is missing and could not be installed (the browser tests need both): "
            f"run `sudo apt-get update && sudo apt-get install {' '.join(CHROMIUM_PACKAGES)}`"
        )
    url = os.environ.get("DATABASE_URL", "")
    print(f"database: {url or 'SQLite (default)'}")
    print(f"services checked in {time.monotonic() - started:.0f} s")
    for problem in problems:
        print(f"MISSING: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    if sys.argv[1:] != ["check"]:
        sys.exit("usage: python -m tests.services check")
    sys.exit(check())
