"""The ``Session`` of the Agent Kernel docs, over the configured store.

    session = Session(id="alice-1", tenant="demo")
    session.set("profile", {"name": "Alice"})
    session.get("profile")            # {'name': 'Alice'}
    session.history()                 # [Message(role='user', ...), ...]

``Session.set`` writes through at once (one key, never the whole session). Inside a run, an
adapter gets a ``SessionView`` instead, whose writes are committed with the run's messages.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sessions_app.stores import get_store
from sessions_app.stores.base import (
    DELETE,
    MESSAGE,
    SHARED_SCOPE,
    TOOL_RESULT,
    Message,
    SessionKey,
    SessionStore,
    Snapshot,
)


def new_session_id() -> str:
    return uuid.uuid4().hex


class Session:
    """A handle on one session of one tenant. Cheap to make; reads go to the store."""

    def __init__(self, id: str | None = None, *, tenant: str = "default", store: SessionStore | None = None) -> None:
        self.key = SessionKey(tenant=tenant, session_id=id or new_session_id())
        self._store = store

    @property
    def id(self) -> str:
        return self.key.session_id

    @property
    def store(self) -> SessionStore:
        return self._store or get_store()

    def __repr__(self) -> str:
        return f"Session(id={self.id!r}, tenant={self.key.tenant!r})"

    def get(self, key: str, default: Any = None, *, agent: str | None = None) -> Any:
        """The value of ``key`` in the shared state, or in ``agent``'s own state."""
        scope = agent or SHARED_SCOPE
        return self.store.load(self.key, scopes=(scope,), window=0).state[scope].get(key, default)

    def set(self, key: str, value: Any, *, agent: str | None = None) -> None:
        """Store a JSON-serialisable ``value`` under ``key``; raises ``TypeError`` otherwise."""
        self.store.commit(self.key, expected_version=None, state={agent or SHARED_SCOPE: {key: value}})

    def delete_key(self, key: str, *, agent: str | None = None) -> None:
        self.store.commit(self.key, expected_version=None, state={agent or SHARED_SCOPE: {key: DELETE}})

    def history(self, *, start: int = 0, limit: int = 100) -> list[Message]:
        return self.store.history(self.key, start=start, limit=limit)

    def clear(self) -> bool:
        """Remove the whole session from the store."""
        return self.store.delete(self.key)


class SessionView:
    """The session as one run of one agent sees it: read at one version, written at commit.

    What an adapter writes (its state, the items its framework produced) is kept here and
    committed with the run's messages, atomically, only if the run completes.
    """

    def __init__(
        self,
        snapshot: Snapshot,
        agent: str,
        *,
        key: SessionKey | None = None,
        on_delta: Callable[[str], None] | None = None,
        run_id: str | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.agent = agent
        self.key = key  # None for a view made outside a run
        self.run_id = run_id  # None when the run records none
        self._changes: dict[str, dict[str, Any]] = {}
        self._items: list[Message] = []
        self._on_delta = on_delta
        self.streamed = False

    def append(self, kind: str, data: dict[str, Any], *, content: str, agent: str | None = None) -> Message:
        """Record an item of the run (``TOOL_CALL``, ``TOOL_RESULT``, ``HANDOFF``): JSON ``data``
        and a line a person can read. Items go to the history after the user's message and
        before the reply, in the order they were appended. ``agent`` defaults to this view's."""
        if kind == MESSAGE:
            raise ValueError("text messages are the runner's to append; use an item kind")
        role = "tool" if kind == TOOL_RESULT else "assistant"
        item = Message(role, content, agent or self.agent, kind=kind, data=data)
        self._items.append(item)
        return item

    @property
    def items(self) -> list[Message]:
        return list(self._items)

    @property
    def streaming(self) -> bool:
        """Whether someone takes the reply's pieces as they come (``emit_delta``): an adapter may
        then ask its model for a streamed answer."""
        return self._on_delta is not None

    def emit_delta(self, text: str) -> None:
        """Send a piece of the reply to whoever streams the run, as it is produced. The pieces an
        adapter emits must add up to the reply it returns; one that emits none is streamed as one
        piece, its whole reply, when it returns."""
        self.streamed = True
        if self._on_delta is not None and text:
            self._on_delta(text)

    @property
    def messages(self) -> list[Message]:
        """The most recent entries (the run's window), oldest first: text messages and items."""
        return self.snapshot.messages

    def text_messages(self, roles: tuple[str, ...] = ("user", "assistant")) -> list[Message]:
        """The window's text messages with one of ``roles``, oldest first."""
        return [m for m in self.snapshot.messages if m.is_text and m.role in roles]

    @property
    def total_messages(self) -> int:
        return self.snapshot.total

    def count(self, role: str) -> int:
        return self.snapshot.role_counts.get(role, 0)

    def _read(self, scope: str, key: str, default: Any) -> Any:
        pending = self._changes.get(scope, {})
        if key in pending:
            return default if pending[key] is DELETE else pending[key]
        return self.snapshot.state.get(scope, {}).get(key, default)

    def get(self, key: str, default: Any = None) -> Any:
        """The agent's own state."""
        return self._read(self.agent, key, default)

    def set(self, key: str, value: Any) -> None:
        self._changes.setdefault(self.agent, {})[key] = value

    def get_shared(self, key: str, default: Any = None) -> Any:
        return self._read(SHARED_SCOPE, key, default)

    def set_shared(self, key: str, value: Any) -> None:
        self._changes.setdefault(SHARED_SCOPE, {})[key] = value

    def changes(self) -> dict[str, dict[str, Any]]:
        return self._changes
