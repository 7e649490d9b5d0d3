"""The store and event log contracts again, with encryption at rest on: every backend meets them
unchanged (over the in-memory store's socket, the client seals and the server keeps what it gets)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sessions_app.stores.base import SessionStore
from sessions_app.stores.sealing import Sealer
from tests.sessions_app.test_store_contract import *  # noqa: F403 - the same tests, this module's store
from tests.sessions_app.test_store_events import *  # noqa: F403

ENCRYPTION_KEYS = ["a-rotated-in-key-of-at-least-32-characters", "an-older-key-of-at-least-32-characters!"]


@pytest.fixture(params=["in_memory", "in_memory_socket", "redis", "dynamodb"])
def store(request: pytest.FixtureRequest, make_store: Callable[..., SessionStore]) -> SessionStore:
    return make_store(request.param, sealer=Sealer(ENCRYPTION_KEYS))
