"""The session store contract.

A store keeps, for each (tenant, session id):

- an append-only **history** of messages, numbered 0, 1, 2, ... in the order they were committed;
- a **state** map per *scope* (``"_shared"`` for the session, or an agent's name), written key by
  key, never as a whole;
- a **version**, raised by one on every commit, and a count of messages per role.

Everything is JSON (encrypted by ``sealing`` where each backend turns a payload into what it keeps,
when ``AK_SESSION__ENCRYPTION_KEY`` is set). Every key a backend writes carries the tenant, so two tenants may use the
same session id without ever seeing each other. A backend raises only the errors defined here,
never those of its client library.

A session that has not been committed to for ``ttl`` seconds is gone (``ttl=0``: never).
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import Any, Final

import orjson

SHARED_SCOPE: Final = "_shared"

ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")
# Compact JSON, as every backend writes it.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


class StoreError(Exception):
    """Base of every error a store raises."""


class StoreUnavailable(StoreError):
    """The backing service did not answer (connection refused, timeout, throttled)."""


class VersionConflict(StoreError):
    """``commit`` found another version than the one the caller read: nothing was written."""


class RunRevoked(StoreError):
    """The run was revoked (``SessionStore.revoke``): its commit wrote nothing."""


class SessionBusy(StoreError):
    """The session's lock was not free within the time the caller was willing to wait."""


class LockLost(StoreError):
    """The lock's lease lapsed and another holder may have taken it."""


class PayloadTooLarge(StoreError):
    """A message or state value is larger than the backend can keep in one record."""


# Deleting a key from a scope is written as this value in ``commit(state=...)``.
DELETE: Final = object()


@dataclass(frozen=True, slots=True)
class SessionKey:
    """Addresses one session of one tenant. Both parts are validated identifiers."""

    tenant: str
    session_id: str

    def __post_init__(self) -> None:
        for name in ("tenant", "session_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not ID.match(value) or len(value) > 200:
                raise ValueError(f"invalid {name}: {value!r}")


#: The kinds of history entries: a text message, or an item a framework produced in a run.
MESSAGE: Final = "message"
TOOL_CALL: Final = "tool_call"
TOOL_RESULT: Final = "tool_result"
HANDOFF: Final = "handoff"
#: A summary of the history before it, written by a session's compaction (``agents_app.compaction``).
SUMMARY: Final = "summary"
ITEM_KINDS: Final = (MESSAGE, TOOL_CALL, TOOL_RESULT, HANDOFF, SUMMARY)


@dataclass(slots=True)
class Message:
    """One entry of the history.

    A text message (``kind="message"``) has a ``role`` (``user``, ``assistant``, ``system``) and
    its ``content``. An item a framework produced (a tool call, a tool's result, a handoff) has
    its ``kind``, its JSON ``data`` and, in ``content``, a line a person can read; its ``role``
    is ``assistant`` (calls, handoffs), ``tool`` (results) or ``system`` (summaries). Counts by role (``role_counts``)
    count text messages by role and items by kind, so ``count("user")`` is the number of turns.
    """

    role: str
    content: str
    agent: str = ""
    created_at: float = field(default_factory=time.time)
    kind: str = MESSAGE
    data: dict[str, Any] | None = None

    @property
    def counted_as(self) -> str:
        """The key of ``role_counts`` this entry counts under."""
        return self.role if self.kind == MESSAGE else self.kind

    @property
    def is_text(self) -> bool:
        return self.kind == MESSAGE

    def to_dict(self) -> dict[str, Any]:
        entry = {"role": self.role, "content": self.content, "agent": self.agent, "created_at": self.created_at}
        if self.kind != MESSAGE:
            entry.update(kind=self.kind, data=self.data)
        return entry

    def to_json(self) -> str:
        return _encode(self.to_dict())

    @classmethod
    def from_json(cls, raw: str | bytes) -> Message:
        return cls.from_dict(orjson.loads(raw))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        return cls(
            data["role"],
            data["content"],
            data.get("agent", ""),
            data.get("created_at", 0.0),
            data.get("kind", MESSAGE),
            data.get("data"),
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What ``load`` returns: a consistent view of one session at one version.

    ``messages`` are the last ``window`` messages, oldest first; ``offset`` is the number of the
    first of them; ``total`` is the length of the whole history. ``state`` maps each requested
    scope to its keys (a scope with no keys maps to ``{}``). ``version`` is 0 for a session that
    does not exist (never committed, deleted, or expired). ``run_committed``: when
    ``acquire_and_load`` was asked about a run, what ``committed`` says of it.
    """

    version: int
    messages: list[Message]
    offset: int
    total: int
    role_counts: dict[str, int]
    state: dict[str, dict[str, Any]]
    run_committed: int | None = None

    @property
    def exists(self) -> bool:
        return self.version > 0


@dataclass(frozen=True, slots=True)
class CommitResult:
    version: int
    total: int
    role_counts: dict[str, int]


def dumps(value: Any) -> str:
    """Encode a state value. Only JSON is ever written: a shared store must not run code."""
    try:
        return _encode(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"session values must be JSON-serialisable: {exc}") from exc


#: Decode what ``dumps`` wrote.
loads = orjson.loads


class Lock(ABC):
    """A held per-session lock with a lease, renewed by ``renew``. If the lease lapses another
    caller may take the lock; the version check at commit then fails the late holder."""

    def __init__(self, store: Any, key: SessionKey, lease: float) -> None:
        self.store = store
        self.key = key
        self.lease = lease
        self.token = uuid.uuid4().hex

    @abstractmethod
    def take(self) -> bool:
        """One try: True if this holder has the lock now (none held, or a lapsed lease, is free)."""

    @abstractmethod
    def renew(self) -> None:
        """Extend the lease by ``lease`` seconds from now. Raises ``LockLost`` if it lapsed."""

    @abstractmethod
    def release(self) -> None:
        """Release the lock if this holder still has it; never releases another holder's."""


class SessionStore(ABC):
    """The contract every backend meets. Subclasses take ``ttl`` plus their own options."""

    #: Name in ``settings.AK_SESSION_BACKENDS``.
    name: str = ""
    #: The class of this backend's locks (``acquire`` makes one and tries ``take``).
    lock_class: type[Lock]
    #: Whether ``revoke`` works (a backend that cannot says False, and raises NotImplementedError).
    can_revoke: bool = True

    def __init__(self, *, ttl: float = 0) -> None:
        self.ttl = float(ttl)

    @abstractmethod
    def load(self, key: SessionKey, *, scopes: Sequence[str] = (SHARED_SCOPE,), window: int = 50) -> Snapshot:
        """Return the session's version, its last ``window`` messages and the given scopes.

        One consistent read whose cost does not depend on the length of the history. A missing or
        expired session is an empty snapshot with ``version == 0``. Raises ``StoreUnavailable``.
        """

    @abstractmethod
    def history(self, key: SessionKey, *, start: int = 0, limit: int = 100) -> list[Message]:
        """Return up to ``limit`` messages numbered ``start`` onward, oldest first.

        ``[]`` past the end or for a missing session. Raises ``StoreUnavailable``.
        """

    @abstractmethod
    def commit(
        self,
        key: SessionKey,
        *,
        expected_version: int | None,
        append: Sequence[Message] = (),
        state: Mapping[str, Mapping[str, Any]] | None = None,
        run_id: str | None = None,
    ) -> CommitResult:
        """Atomically append ``append`` and apply ``state`` ({scope: {key: value or DELETE}}); with
        ``run_id``, record that this run committed (``committed`` returns its first message's number).

        With ``expected_version`` set, nothing is written unless the stored version equals it (0 for
        a new session): ``VersionConflict`` otherwise; ``None`` writes unconditionally. The version
        goes up by one and the expiry is pushed ``ttl`` seconds ahead; cost does not grow with the
        history. Raises ``PayloadTooLarge``, ``RunRevoked`` (nothing written) and ``StoreUnavailable``.
        """

    @abstractmethod
    def committed(self, key: SessionKey, run_id: str) -> int | None:
        """The number of the first message run ``run_id`` appended, or None if it never committed."""

    @abstractmethod
    def revoke(self, key: SessionKey, run_id: str) -> bool:
        """Make run ``run_id`` unable to commit, unless it already has: atomic against ``commit``.

        True: revoked, every later commit naming it raises ``RunRevoked``. False: it had committed.
        Raises ``StoreUnavailable``.
        """

    @abstractmethod
    def delete(self, key: SessionKey) -> bool:
        """Remove the session's history, state and version (a backend that keeps event logs too
        removes the session's logs with them). True if any history, state or version was there."""

    def acquire(self, key: SessionKey, *, lease: float, wait: float) -> Lock:
        """Take the session's lock for ``lease`` seconds, waiting up to ``wait`` seconds.

        ``wait=0`` tries once. Raises ``SessionBusy`` when it is not free in time and
        ``StoreUnavailable``. The lock is shared by every process that uses the same backing service.
        """
        lock, delays = self.lock_class(self, key, lease), backoff_delays(wait)
        while not lock.take():
            wait_or_raise(delays, SessionBusy(f"session {key.session_id} is busy"))
        return lock

    def acquire_and_load(
        self,
        key: SessionKey,
        *,
        lease: float,
        wait: float,
        scopes: Sequence[str] = (SHARED_SCOPE,),
        window: int = 50,
        run_id: str | None = None,
    ) -> tuple[Lock, Snapshot]:
        """``acquire``, then ``load`` under the lock (the lock released if the load fails). With
        ``run_id``, the snapshot's ``run_committed`` says whether that run committed before."""
        held = self.acquire(key, lease=lease, wait=wait)
        try:
            snapshot = self.load(key, scopes=scopes, window=window)
            return held, snapshot if run_id is None else replace(snapshot, run_committed=self.committed(key, run_id))
        except BaseException:
            with suppress(StoreError):
                held.release()
            raise

    def commit_and_release(
        self,
        lock: Lock,
        *,
        expected_version: int | None,
        append: Sequence[Message] = (),
        state: Mapping[str, Mapping[str, Any]] | None = None,
        run_id: str | None = None,
    ) -> CommitResult:
        """``commit`` on ``lock.key``, then release ``lock``; when ``commit`` raises, the caller
        still holds it."""
        result = self.commit(lock.key, expected_version=expected_version, append=append, state=state, run_id=run_id)
        with suppress(StoreError):  # committed: a lock that could not be released ends with its lease
            lock.release()
        return result

    @contextmanager
    def lock(self, key: SessionKey, *, lease: float = 30.0, wait: float = 120.0) -> Iterator[Lock]:
        held = self.acquire(key, lease=lease, wait=wait)
        try:
            yield held
        finally:
            with suppress(StoreError):  # the lease ends by itself
                held.release()

    @abstractmethod
    def ping(self) -> None:
        """Return when the backing service answers; raise ``StoreUnavailable`` otherwise."""

    def reseal(self, key: SessionKey) -> int:
        """Encrypt again, under the first key of ``AK_SESSION__ENCRYPTION_KEY``, each message and
        state value of the session that is plain or under an older key (``sealing``); return how
        many. Each rewrite is a compare-and-set against what was read, so runs go on meanwhile.
        Event logs are left to expire. A backend that cannot raises NotImplementedError."""
        raise NotImplementedError(f"the {self.name} store cannot re-encrypt sessions")

    def ensure_schema(self) -> None:  # noqa: B027 - optional hook
        """Create what the backend needs (a table); idempotent. Most backends need nothing."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. The store stays usable: it reconnects on the next call."""


def wait_or_raise(delays: Iterator[float], error: StoreError) -> None:
    """Sleep the next of ``delays`` (``backoff_delays``); raise ``error`` once they are spent."""
    delay = next(delays, None)
    if delay is None:
        raise error from None
    time.sleep(delay)


def backoff_delays(wait: float, *, first: float = 0.002, cap: float = 0.05) -> Iterator[float]:
    """Sleep intervals for polling a lock: short at first, capped, ending after ``wait`` s."""
    deadline = time.monotonic() + wait
    delay = first
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        yield min(delay * random.uniform(0.5, 1.0), remaining)  # noqa: S311 - jitter, not a secret
        delay = min(delay * 2, cap)
