"""Fixtures over real services: Redis, moto's DynamoDB server, gunicorn. Nothing is faked."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from sessions_app.stores import reset_store
from sessions_app.stores.base import SessionKey, SessionStore
from sessions_app.stores.memory import InMemoryStore
from sessions_app.stores.memory_socket import MemoryStoreServer, SocketMemoryStore
from tests import services
from tests.live.servers import LiveServers, Platform, Stack
from tests.modelserver import ModelServer

#: ``in_memory_socket``: the in-memory store kept by another thread's server and reached over its
#: Unix socket, as the web server and the worker of ``make run`` reach it.
BACKENDS = ["in_memory", "in_memory_socket", "redis", "dynamodb"]


LIVE = ("live", "browser")  # the folders of the tests that start servers
#: Live tests that time nothing and whose servers are their own (no other module asks for the same
#: ones): the other process runs them, beside the live group, so that the two take about as long.
BESIDE_LIVE = (
    "test_schemathesis.py",  # the schema's fuzzing
    "test_serve.py",  # ``make run`` started and stopped
    "test_fair_queue.py",  # a fresh queue; it checks order, not time
)


def pytest_configure(config: pytest.Config) -> None:
    """Test settings, set before anything reads them.

    - A fast password hasher, as Django's testing docs advise: PBKDF2's million rounds cost 0.3 s
      of CPU a password made or checked, about a minute of the suite's. The tests check who may log
      in and what wrong passwords lock out, not the hash's strength.
    - Each test process its own folders of the embedded broker (kombu's filesystem transport, the
      settings' default): a test that breaks its process's broker (``test_fair_queue``'s
      ``broken_broker``) breaks no other process's. Set before the Celery app reads its settings."""
    import os

    from django.conf import settings

    from akplatform.celery import app

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
    if not worker or "data_folder_in" not in options:
        return
    assert not app.configured, "the Celery app read its settings before the tests could set them"
    folder = Path(settings.CELERY_BROKER_FOLDER) / worker
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        **options,
        **{key: str(folder / key.removesuffix("_folder")) for key in options if key.endswith("_folder")},
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
    }


#: What gives a test the database: pytest-django's marker, or one of these fixtures.
DATABASE_FIXTURES = ("db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database-only",
        action="store_true",
        help="run only the tests whose outcome can depend on the database (CI's second pass, on "
        "PostgreSQL): those given Django's test database, and the live and browser tests, whose "
        "servers run over DATABASE_URL. The others do the same whatever the database.",
    )


def uses_database(item: pytest.Item, root: Path) -> bool:
    """Whether ``item`` reaches the database: pytest-django lets no other test touch it."""
    live = any(item.path.is_relative_to(root / folder) for folder in LIVE)
    fixtures = getattr(item, "fixturenames", ())
    return live or item.get_closest_marker("django_db") is not None or any(f in fixtures for f in DATABASE_FIXTURES)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``make test``'s ``-n 2 --dist loadgroup`` the live tests run one after another in one
    process (where the servers they share live, and where they do not compete with each other for
    the machine), while the other process runs the rest. ``--database-only`` deselects the tests
    that do not reach the database."""
    root = Path(__file__).parent
    if config.getoption("database_only"):
        kept = [item for item in items if uses_database(item, root)]
        config.hook.pytest_deselected(items=list(set(items) - set(kept)))
        items[:] = kept
    for item in items:
        live = any(item.path.is_relative_to(root / folder) for folder in LIVE)
        if live and item.path.name not in BESIDE_LIVE:
            item.add_marker(pytest.mark.xdist_group("live"))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The machine's Redis on 6379 when it answers, else one of our own on a free port."""
    if services.reachable("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/0"
        return
    if services.redis_server_binary() is None:
        pytest.fail("Redis is neither running on 127.0.0.1:6379 nor installed: `make test` installs it")
    server = services.redis_server(tmp_path_factory.mktemp("redis")).start()
    yield f"redis://127.0.0.1:{server.port}/0"
    server.stop()


@pytest.fixture(scope="session")
def dynamodb_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's DynamoDB over HTTP, on a free port, for the whole session."""
    server = services.moto_server(tmp_path_factory.mktemp("moto")).start(timeout=60)
    yield server.url
    server.stop()


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture
def tenant_slug() -> str:
    """A tenant no other test uses, so store keys never collide between tests."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_store(request: pytest.FixtureRequest) -> Iterator[Callable[..., SessionStore]]:
    """Build a store of a backend over its real service: ``make_store("redis", ttl=5)``."""
    made: list[SessionStore] = []
    servers: list[MemoryStoreServer] = []

    def make(kind: str, *, ttl: float = 3600, **options: object) -> SessionStore:
        from sessions_app.stores import build_store

        if kind == "in_memory_socket":
            sealer = options.pop("sealer", None)  # the client seals: the server keeps what it is sent
            servers.append(MemoryStoreServer(InMemoryStore(ttl=ttl, **options)).start())  # type: ignore[arg-type]
            made.append(SocketMemoryStore(socket=servers[-1].path, ttl=ttl, **({"sealer": sealer} if sealer else {})))
            return made[-1]
        if kind == "redis":
            options.setdefault("url", request.getfixturevalue("redis_url"))
        elif kind == "dynamodb":
            options.setdefault("endpoint_url", request.getfixturevalue("dynamodb_url"))
            options.setdefault("table_name", "ak-test-sessions")
        store = build_store(kind, ttl=ttl, **options)
        store.ensure_schema()
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
    for server in servers:
        server.stop()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, make_store: Callable[..., SessionStore]) -> SessionStore:
    """Each backend in turn: the contract suite runs once per backend."""
    return make_store(request.param)


@pytest.fixture
def key(tenant_slug: str) -> SessionKey:
    return SessionKey(tenant=tenant_slug, session_id=f"s-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def use_store() -> Iterator[Callable[[SessionStore], SessionStore]]:
    """Make a store the process-wide one for this test."""

    def use(store: SessionStore) -> SessionStore:
        reset_store(store)
        return store

    yield use
    reset_store(None)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Rate limits and failed-authentication counts start from nothing in every test."""
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    cache = caches["default"]  # the backend itself: ``django.core.cache.cache`` is a proxy of it
    local = isinstance(cache, LocMemCache)  # a shared Redis is left alone: its clear() flushes the db
    if local:
        cache.clear()
    yield
    if local:
        cache.clear()


@pytest.fixture(autouse=True)
def _fresh_memory_store() -> Iterator[None]:
    """Every test starts with an empty process-wide store of the configured (in-memory) type."""
    reset_store(None)
    yield
    reset_store(None)


# --- API -----------------------------------------------------------------------------------------


@dataclass
class TenantClient:
    tenant: object
    key: str
    client: APIClient

    def post(self, path: str, data: object = None, **extra: object):
        return self.client.post(path, data, format="json", **extra)

    def get(self, path: str, **extra: object):
        return self.client.get(path, **extra)

    def delete(self, path: str, **extra: object):
        return self.client.delete(path, **extra)


@pytest.fixture
def make_tenant(transactional_db: None) -> Callable[..., TenantClient]:
    """Tenants with an API client. The database is transactional: runs reach it from the I/O
    threads of ``infra.io_threads`` (their own connections), which must see what the test wrote."""
    from sessions_app.services import api_key_issue, tenant_create

    def make(slug: str | None = None) -> TenantClient:
        tenant, _ = tenant_create(slug=slug or f"t{uuid.uuid4().hex[:12]}")
        _, raw = api_key_issue(tenant=tenant)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return TenantClient(tenant=tenant, key=raw, client=client)

    return make


@pytest.fixture
def alice(make_tenant: Callable[..., TenantClient]) -> TenantClient:
    return make_tenant()


# --- The platform as users run it: gunicorn over a real database ---------------------------------


@pytest.fixture(scope="session")
def live_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServers]:
    servers = LiveServers(tmp_path_factory.mktemp("live"))
    yield servers
    servers.close()


@pytest.fixture
def start_platform(live_servers: LiveServers) -> Iterator[Callable[..., Platform]]:
    """``start_platform(env, workers=2, fresh=False)``: gunicorn with ``workers`` processes over a
    migrated database, with extra env; the same one another test started with the same arguments
    when it is still up (``fresh``: one of this test's own, stopped after it)."""
    lent: list[tuple[tuple | None, Stack]] = []

    def start(env: dict[str, str], *, workers: int = 2, fresh: bool = False) -> Platform:
        key = None if fresh else ("platform", workers, tuple(sorted(env.items())))
        stack = live_servers.borrow(key, lambda: live_servers.platform(env, workers))
        lent.append((key, stack))
        return stack.tenant()

    yield start
    for key, stack in lent:
        live_servers.give_back(key, stack)


# --- A model to talk to: an OpenAI-compatible server on a free loopback port ----------------------


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    """A started :class:`~tests.modelserver.ModelServer` (its ``url`` is the ``base_url``), stopped after the test."""
    with ModelServer() as server:
        yield server
