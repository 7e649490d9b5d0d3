"""In-process store: for development, tests and single-process use.

Thread-safe, honours the TTL, and bounded: past ``max_sessions`` it evicts expired sessions, then
the least recently used. Locks serialize the threads of this process only (``memory_socket``
shares one store between processes). Event logs live apart from the sessions, so that evicting a
session never cuts a stream short; expired logs are swept at most once a minute. Payloads are
held as the shared backends keep them: JSON text, sealed by ``sealer`` when encryption is on. The
``*_held`` methods take and give payloads as held: what ``memory_socket`` sends, sealed by its
client, so that the socket carries no payload in clear either.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sessions_app.stores.base import (
    DELETE,
    CommitResult,
    Lock,
    LockLost,
    Message,
    RunRevoked,
    SessionKey,
    SessionStore,
    Snapshot,
    VersionConflict,
    loads,
)
from sessions_app.stores.events import Event, EventLog, check_run_id, encode_events
from sessions_app.stores.sealing import PLAIN, Sealer

#: Seconds between sweeps of expired event logs.
_SWEEP_EVERY = 60.0
#: A payload as held: JSON text, or sealed (``sealing``).
Held = str | bytes


@dataclass(frozen=True, slots=True)
class HeldSnapshot:
    """A ``Snapshot`` whose messages and state values are as held; ``opened`` makes it one."""

    version: int
    messages: list[Held]
    offset: int
    total: int
    role_counts: dict[str, int]
    state: dict[str, dict[str, Held]]

    def opened(self, sealer: Sealer, key: SessionKey) -> Snapshot:
        open_ = sealer.opener(key)
        messages = [Message.from_json(open_(m)) for m in self.messages]
        state = {scope: {k: loads(open_(v)) for k, v in values.items()} for scope, values in self.state.items()}
        return Snapshot(self.version, messages, self.offset, self.total, self.role_counts, state)


@dataclass
class _Entry:
    version: int = 0
    messages: list[Held] = field(default_factory=list)  # JSON (or sealed), as Redis keeps them
    role_counts: dict[str, int] = field(default_factory=dict)
    state: dict[str, dict[str, Held]] = field(default_factory=dict)
    expires_at: float = 0.0  # 0: never
    runs: dict[str, int] = field(default_factory=dict)  # run id -> its first message's number
    revoked: set[str] = field(default_factory=set)  # run ids that may not commit


@dataclass
class _EventLog:
    events: list[tuple[str, Held]] = field(default_factory=list)  # (kind, data as JSON); id = index + 1
    expires_at: float = 0.0  # 0: never


class TokenLock(Lock):
    """A lock kept by its store's ``take_lock``, ``renew_lock`` and ``release_lock``."""

    def take(self) -> bool:
        return self.store.take_lock(self.key, self.token, self.lease)

    def renew(self) -> None:
        self.store.renew_lock(self.key, self.token, self.lease)

    def release(self) -> None:
        self.store.release_lock(self.key, self.token)


class InMemoryStore(SessionStore, EventLog):
    name = "in_memory"
    lock_class = TokenLock

    def __init__(
        self, *, ttl: float = 0, events_ttl: float = 3600, max_sessions: int = 10000, sealer: Sealer = PLAIN
    ) -> None:
        SessionStore.__init__(self, ttl=ttl)
        EventLog.__init__(self, events_ttl=events_ttl)
        self.max_sessions = max_sessions
        self.sealer = sealer
        self._mutex = threading.RLock()
        self._entries: OrderedDict[SessionKey, _Entry] = OrderedDict()
        self._locks: dict[SessionKey, tuple[str, float]] = {}
        self._logs_mutex = threading.Lock()
        self._logs: dict[SessionKey, dict[str, _EventLog]] = {}
        self._swept = time.monotonic()

    def _live_log(self, key: SessionKey, run_id: str, now: float) -> _EventLog | None:
        log = self._logs.get(key, {}).get(run_id)
        return None if log is None or (log.expires_at and log.expires_at <= now) else log

    def append_events(self, key: SessionKey, run_id: str, events: Sequence[tuple[str, dict[str, Any]]]) -> int:
        check_run_id(run_id)
        return self.append_held_events(key, run_id, [(k, self.sealer.seal(key, d)) for k, d in encode_events(events)])

    def append_held_events(self, key: SessionKey, run_id: str, rows: Sequence[tuple[str, Held]]) -> int:
        """``append_events`` of rows already checked and sealed (kind, data as held)."""
        with self._logs_mutex:
            now = time.time()
            log = self._live_log(key, run_id, now)
            if not rows:
                return 0 if log is None else len(log.events)
            if log is None:
                log = self._logs.setdefault(key, {})[run_id] = _EventLog()
            log.events.extend(rows)
            log.expires_at = now + self.events_ttl if self.events_ttl else 0.0
            if time.monotonic() - self._swept > _SWEEP_EVERY:
                self._sweep_logs(now)
            return len(log.events)

    def _sweep_logs(self, now: float) -> None:
        for key in list(self._logs):
            runs = self._logs[key]
            for run_id in [r for r, log in runs.items() if log.expires_at and log.expires_at <= now]:
                del runs[run_id]
            if not runs:
                del self._logs[key]
        self._swept = time.monotonic()

    def read_events(self, key: SessionKey, run_id: str, *, after: int = 0, limit: int = 1000) -> list[Event]:
        check_run_id(run_id)
        open_ = self.sealer.opener(key)
        return [
            Event(n, kind, loads(open_(data))) for n, kind, data in self.read_held_events(key, run_id, after, limit)
        ]

    def read_held_events(self, key: SessionKey, run_id: str, after: int, limit: int) -> list[tuple[int, str, Held]]:
        """``read_events`` as held: (id, kind, data)."""
        after = max(after, 0)
        with self._logs_mutex:
            log = self._live_log(key, run_id, time.time())
            rows = [] if log is None or limit <= 0 else log.events[after : after + limit]
        return [(after + i + 1, kind, data) for i, (kind, data) in enumerate(rows)]

    def delete_logs(self, key: SessionKey) -> None:
        with self._logs_mutex:
            self._logs.pop(key, None)

    def _live(self, key: SessionKey) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at and entry.expires_at <= time.time():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def _evict(self) -> None:
        now = time.time()
        for key in [k for k, e in self._entries.items() if e.expires_at and e.expires_at <= now]:
            del self._entries[key]
        while len(self._entries) > self.max_sessions:
            self._entries.popitem(last=False)

    def load(self, key: SessionKey, *, scopes: Sequence[str] = ("_shared",), window: int = 50) -> Snapshot:
        return self.load_held(key, scopes, window).opened(self.sealer, key)

    def load_held(self, key: SessionKey, scopes: Sequence[str], window: int) -> HeldSnapshot:
        """``load``, its messages and values as held."""
        with self._mutex:
            entry = self._live(key) or _Entry()
            total = len(entry.messages)
            offset = max(0, total - window) if window else total
            state = {s: dict(entry.state.get(s, {})) for s in scopes}
            return HeldSnapshot(entry.version, entry.messages[offset:], offset, total, dict(entry.role_counts), state)

    def history(self, key: SessionKey, *, start: int = 0, limit: int = 100) -> list[Message]:
        open_ = self.sealer.opener(key)
        return [Message.from_json(open_(m)) for m in self.history_held(key, start, limit)]

    def history_held(self, key: SessionKey, start: int, limit: int) -> list[Held]:
        """``history`` as held."""
        with self._mutex:
            entry = self._live(key)
            return [] if entry is None or start < 0 else entry.messages[start : start + limit]

    def commit(
        self,
        key: SessionKey,
        *,
        expected_version: int | None,
        append: Sequence[Message] = (),
        state: Mapping[str, Mapping[str, Any]] | None = None,
        run_id: str | None = None,
    ) -> CommitResult:
        changes = {
            scope: {k: (DELETE if v is DELETE else self.sealer.value(key, v)) for k, v in values.items()}
            for scope, values in (state or {}).items()
        }
        held = [(m.counted_as, self.sealer.message(key, m)) for m in append]
        return self.commit_held(key, expected_version=expected_version, append=held, state=changes, run_id=run_id)

    def commit_held(
        self,
        key: SessionKey,
        *,
        expected_version: int | None,
        append: Sequence[tuple[str, Held]],
        state: Mapping[str, Mapping[str, Held | object]],
        run_id: str | None,
    ) -> CommitResult:
        """``commit`` of messages as (what it counts as, the message as held) and values as held."""
        with self._mutex:
            entry = self._live(key)
            current = entry.version if entry else 0
            if expected_version is not None and expected_version != current:
                raise VersionConflict(f"{key.session_id}: expected version {expected_version}, found {current}")
            if entry is not None and run_id in entry.revoked:
                raise RunRevoked(f"run {run_id} was revoked")
            if entry is None:
                entry = self._entries[key] = _Entry()
                self._evict()
            if run_id is not None:
                entry.runs[run_id] = len(entry.messages)
            for counted_as, message in append:
                entry.messages.append(message)
                entry.role_counts[counted_as] = entry.role_counts.get(counted_as, 0) + 1
            for scope, values in state.items():
                bucket = entry.state.setdefault(scope, {})
                for k, v in values.items():
                    if v is DELETE:
                        bucket.pop(k, None)
                    else:
                        bucket[k] = v  # type: ignore[assignment]
            entry.version = current + 1
            entry.expires_at = time.time() + self.ttl if self.ttl else 0.0
            return CommitResult(entry.version, len(entry.messages), dict(entry.role_counts))

    def reseal(self, key: SessionKey) -> int:
        count = 0
        with self._mutex:
            entry = self._live(key)
            held = [entry.messages, *entry.state.values()] if entry is not None else []
            for payloads in held:
                for at, stored in list(enumerate(payloads) if isinstance(payloads, list) else payloads.items()):
                    sealed = self.sealer.reseal(key, stored)
                    if sealed is not None:
                        payloads[at] = sealed  # type: ignore[index]
                        count += 1
        return count

    def committed(self, key: SessionKey, run_id: str) -> int | None:
        with self._mutex:
            entry = self._live(key)
            return None if entry is None else entry.runs.get(run_id)

    def revoke(self, key: SessionKey, run_id: str) -> bool:
        with self._mutex:
            entry = self._live(key)
            if entry is None:
                # Version 0: the session still reads as empty; the mark lives as a session would.
                entry = self._entries[key] = _Entry(expires_at=time.time() + self.ttl if self.ttl else 0.0)
                self._evict()
            if run_id in entry.runs:
                return False
            entry.revoked.add(run_id)
            return True

    def delete(self, key: SessionKey) -> bool:
        self.delete_logs(key)
        with self._mutex:
            return self._entries.pop(key, None) is not None

    def take_lock(self, key: SessionKey, token: str, lease: float) -> bool:
        with self._mutex:
            now = time.monotonic()
            if self._locks.get(key, (None, 0.0))[1] > now:
                return False
            self._locks[key] = (token, now + lease)
            return True

    def renew_lock(self, key: SessionKey, token: str, lease: float) -> None:
        with self._mutex:
            held, _ = self._locks.get(key, (None, 0.0))
            if held != token:
                raise LockLost(f"lock on {key.session_id} was lost")
            self._locks[key] = (token, time.monotonic() + lease)

    def release_lock(self, key: SessionKey, token: str) -> None:
        with self._mutex:
            held, _ = self._locks.get(key, (None, 0.0))
            if held == token:
                del self._locks[key]

    def ping(self) -> None:
        return None
