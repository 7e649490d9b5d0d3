"""Live stacks for the tests: gunicorn (and a queue's Celery workers and beat) over a copy of a
database migrated once, lent to every test that asks for the same one, each on a fresh tenant."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests import services


@dataclass
class Platform:
    """A running web tier and the tenant this test was given on it (``key`` is its API key)."""

    url: str
    key: str
    env: dict[str, str]
    webhook_secret: str = ""
    tenant: str = ""


#: Made in the platform's database by one ``manage.py shell`` (a process start each is the cost).
_TENANTS = """
import json
from sessions_app.services import api_key_issue, tenant_create
out = []
for slug in {slugs!r}:
    tenant, _ = tenant_create(slug=slug)
    out.append([slug, api_key_issue(tenant=tenant, name="live")[1], tenant.webhook_secret])
print(json.dumps(out))
"""


def manage(env: dict[str, str], *args: str) -> str:
    """``manage.py ARGS`` in the platform's environment: its stdout."""
    command = [sys.executable, str(services.ROOT / "manage.py"), *args]
    return subprocess.run(command, env=env, check=True, cwd=services.ROOT, capture_output=True).stdout.decode()


def make_tenants(env: dict[str, str], count: int) -> list[tuple[str, str, str]]:
    """``count`` new tenants in the database ``env`` names: (slug, API key, webhook secret) of each."""
    slugs = [f"live-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    out = manage(env, "shell", "-c", _TENANTS.format(slugs=slugs))
    return [tuple(row) for row in json.loads(out.splitlines()[-1])]


class MigratedDatabase:
    """A database migrated once per session that each platform gets a copy of: a file copy on
    SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL (as the suite runs on one or the other).

    It holds ``TENANTS`` tenants, made with it: every copy has them all, and ``tenants`` lends each
    once in the session, so that no two tests share a tenant in the Redis or DynamoDB that the
    platforms share (a ``manage.py shell`` in each platform costs a second of CPU)."""

    TENANTS = 100

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.server = os.environ.get("DATABASE_URL", "")
        self.postgres = self.server.startswith(("postgres://", "postgresql://"))
        tag = uuid.uuid4().hex[:10]
        self.template = f"akp_tpl_{tag}" if self.postgres else str(directory / "template.sqlite3")
        self.made: list[str] = []
        if self.postgres:
            self._admin(f'CREATE DATABASE "{self.template}"')
        env = {**os.environ, "DATABASE_URL": self._url(self.template), "AK_VAR_DIR": str(directory / "var")}
        manage(env, "migrate", "-v0")
        self.tenants: list[tuple[str, str, str]] = make_tenants(env, self.TENANTS)  # lent from the end

    def _url(self, name: str) -> str:
        return self.server.rsplit("/", 1)[0] + f"/{name}" if self.postgres else f"sqlite:///{name}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.server.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(sql)

    def copy(self) -> tuple[str, Callable[[], None]]:
        """A new migrated database: its URL, and what drops it."""
        tag = uuid.uuid4().hex[:10]
        if not self.postgres:
            path = self.directory / f"live-{tag}.sqlite3"
            shutil.copyfile(self.template, path)
            return self._url(str(path)), lambda: path.unlink(missing_ok=True)
        name = f"akp_live_{tag}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return self._url(name), lambda: self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop(self) -> None:
        if self.postgres:
            self._admin(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')


@dataclass
class Stack:
    """Started processes over a copy of the migrated database, lent to the tests that share them."""

    base: Platform
    directory: Path  # its logs and its AK_VAR_DIR
    processes: list[services.Server | services.Process]
    drop: Callable[[], None]
    #: The migrated database's tenants not lent yet (one list for every stack), then its own.
    tenants: list[tuple[str, str, str]] = field(default_factory=list)
    extra: object = None  # what a caller keeps with it (the queue's workers)
    started: int = 0  # how many processes it had when it was ready: one more (a worker added) is another stack

    def __post_init__(self) -> None:
        self.started = len(self.processes)

    def tenant(self) -> Platform:
        """The platform with a tenant of its own: no test sees another's agents, limits or runs."""
        if not self.tenants:  # the session has lent every tenant of the migrated database
            self.tenants = make_tenants(self.base.env, 4)
        slug, key, secret = self.tenants.pop()
        return Platform(url=self.base.url, key=key, env=self.base.env, webhook_secret=secret, tenant=slug)

    def healthy(self) -> bool:
        alive = all(p.proc is not None and p.proc.poll() is None for p in self.processes)
        return alive and len(self.processes) == self.started

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        self.drop()


class LiveServers:
    """Live stacks started once and lent to every test that asks for the same one (same kind, same
    environment). A test gets a fresh tenant on it; a stack a test left with a process dead (a worker
    killed) or asked ``fresh`` for is stopped, not lent again. A few idle stacks are kept."""

    #: Idle stacks kept for the next test. Fewer on PostgreSQL: a stack's processes keep up to
    #: ``POOL_SIZE`` connections each for minutes after a burst, and the idle stacks with the one
    #: under test and the other xdist process's must stay under the server's 100 connections.
    IDLE = 1 if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")) else 3
    #: Each stack process's DATABASE_POOL_SIZE (a test may set its own): with the default 10, the
    #: processes of three stacks (gunicorn's two, two workers and beat each) could hold 150.
    POOL_SIZE = "5"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._database: MigratedDatabase | None = None
        self.idle: dict[tuple, Stack] = {}

    @property
    def database(self) -> MigratedDatabase:
        if self._database is None:
            self._database = MigratedDatabase(self.directory)
        return self._database

    def borrow(self, key: tuple, launch: Callable[[], Stack]) -> Stack:
        return self.idle.pop(key, None) or launch()

    def give_back(self, key: tuple | None, stack: Stack) -> None:
        if key is None or not stack.healthy():
            stack.stop()
            return
        self.idle[key] = stack
        while len(self.idle) > self.IDLE:
            self.idle.pop(next(iter(self.idle))).stop()

    def platform(
        self,
        env: dict[str, str],
        workers: int,
        beside: Callable[[dict[str, str], Path], list[services.Process]] = lambda env, directory: [],
    ) -> Stack:
        """The web tier as deployed (gunicorn, ``gunicorn.conf.py``: ASGI on uvicorn's worker) on
        a copy of the migrated database, with extra env. ``beside(env, directory)``: the other
        processes of the stack (Celery workers, beat), started at the same time as gunicorn, each
        waited for once all have started."""
        directory = self.directory / uuid.uuid4().hex[:8]
        directory.mkdir()
        database_url, drop = self.database.copy()
        full_env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "AK_VAR_DIR": str(directory / "var"),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "DJANGO_SETTINGS_MODULE": "akplatform.settings",
            # Its own rate limits and failure counts, whatever Redis it shares with other tests.
            "AK_CACHE__PREFIX": f"test-{uuid.uuid4().hex[:8]}",
            # No framework's library imported as a process starts (2.5 s of CPU each, and a suite
            # starts some fifty platforms): a test's first run of a framework imports it, in an
            # I/O thread (``frameworks.framework_loaded``). ``make run``'s test preloads them all.
            "AK_AGENTS__PRELOAD": "",
            "DATABASE_POOL_SIZE": self.POOL_SIZE,
            **env,
        }
        port = services.free_port()
        server = services.Server(
            args=[
                str(services.VENV_BIN / "gunicorn"),
                "akplatform.asgi:application",
                f"--bind=127.0.0.1:{port}",
                f"--workers={workers}",
            ],
            port=port,
            cwd=services.ROOT,
            env=full_env,
            log=directory / "gunicorn.log",
        )
        base = Platform(url=server.url, key="", env=full_env)
        stack = Stack(base=base, directory=directory, processes=[server], drop=drop, tenants=self.database.tenants)
        try:
            stack.processes += beside(full_env, directory)
            for process in stack.processes:
                process.spawn()
            server.ready(timeout=60)
            services.wait_until_answered(f"{server.url}/health", timeout=60)  # gunicorn binds before it boots
            for process in stack.processes[1:]:
                process.ready(timeout=60)
        except BaseException:
            stack.stop()
            raise
        stack.started = len(stack.processes)
        return stack

    def close(self) -> None:
        while self.idle:
            self.idle.popitem()[1].stop()
        if self._database is not None:
            self._database.drop()
