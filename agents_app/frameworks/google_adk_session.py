"""ADK's ``BaseSessionService`` over the platform's session, for one run of one agent.

Where ADK's session lives (imported by ``google_adk_run``: it needs ADK):

- its **events** and its **session state** (keys without a prefix): the agent's own state, under
  ``ADK_KEY`` (``{"events": [...], "state": {...}}``, events as ADK's JSON): no other agent reads
  or writes them;
- its ``user:`` and ``app:`` keys: the session's shared state, under their prefixed names (every
  agent of the session, of any framework, and ``Session.get("user:...")`` see them). They do not
  cross sessions: the store commits one session atomically with the run, and state spanning
  sessions would need a write outside that commit, which a failed run could not take back;
- its ``temp:`` keys: nowhere. ADK keeps them for the invocation and trims them from the events.

Nothing reaches the store before the run's commit: ``flush`` writes the ADK session into the
``SessionView``, whose changes the runner commits with the reply, or drops when the run fails.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Final

from google.adk.events.event import Event
from google.adk.sessions import BaseSessionService, Session
from google.adk.sessions.base_session_service import GetSessionConfig, ListSessionsResponse
from google.adk.sessions.state import State

from agents_app.frameworks.model import ModelError
from sessions_app.core import SessionView
from sessions_app.stores.base import SHARED_SCOPE, dumps

#: The key of the agent's own state that holds its ADK session.
ADK_KEY: Final = "adk"
#: The most the ADK session may take in the agent's state, as JSON.
MAX_ADK_BYTES: Final = 256 * 1024
SHARED_PREFIXES: Final = (State.APP_PREFIX, State.USER_PREFIX)


class PlatformSessionService(BaseSessionService):
    """The one ADK session of a run: ``app_name``, ``user_id`` and ``session_id`` name it for ADK
    only (the view is already the tenant's session and the agent's state)."""

    def __init__(self, view: SessionView, *, app_name: str, user_id: str, session_id: str) -> None:
        self._view = view
        stored = view.get(ADK_KEY) or {}
        try:
            events = [Event.model_validate(raw) for raw in stored.get("events", [])]
        except ValueError as exc:
            raise ModelError(f"the agent's stored ADK events cannot be read: {exc}") from None
        state = dict(stored.get("state", {}))
        shared = view.snapshot.state.get(SHARED_SCOPE, {})
        state.update({key: view.get_shared(key) for key in shared if key.startswith(SHARED_PREFIXES)})
        self.session = Session(
            id=session_id, app_name=app_name, user_id=user_id, state=state, events=events, last_update_time=time.time()
        )
        #: How many events the session held when the run began.
        self.loaded = len(events)

    def _is_ours(self, app_name: str, user_id: str, session_id: str) -> bool:
        s = self.session
        return (app_name, user_id, session_id) == (s.app_name, s.user_id, s.id)

    async def create_session(
        self, *, app_name: str, user_id: str, state: dict[str, Any] | None = None, session_id: str | None = None
    ) -> Session:
        raise ModelError("an ADK session is the platform's session: it exists before the run")

    async def get_session(
        self, *, app_name: str, user_id: str, session_id: str, config: GetSessionConfig | None = None
    ) -> Session | None:
        """The run's session (ADK's runner changes the object it is given, so it is the one)."""
        return self.session if self._is_ours(app_name, user_id, session_id) else None

    async def list_sessions(self, *, app_name: str, user_id: str | None = None) -> ListSessionsResponse:
        s = self.session
        if s.app_name != app_name or user_id not in (None, s.user_id):
            return ListSessionsResponse()
        return ListSessionsResponse(sessions=[Session(id=s.id, app_name=s.app_name, user_id=s.user_id)])

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        raise ModelError("a session's history belongs to the platform: DELETE /sessions/<id> removes it")

    async def append_event(self, session: Session, event: Event) -> Event:
        event = await super().append_event(session, event)  # temp: kept for the invocation, trimmed
        if not event.partial:
            session.last_update_time = event.timestamp
        return event

    def flush(self, *, history: int, keep_from: int | None = None) -> None:
        """Write the ADK session into the view: its latest ``history`` events (from a user's
        message on, so no answer is kept without its call; all from index ``keep_from`` on, which a
        paused invocation needs to go on), its state without ``temp:`` keys, and the ``user:`` and
        ``app:`` keys that changed. Raises ``ModelError`` when what is kept is over
        ``MAX_ADK_BYTES``."""
        events = self.session.events
        start = max(0, len(events) - history)
        if keep_from is not None:
            start = min(start, keep_from)
        while start < len(events) and not _opens_a_turn(events[start]) and (keep_from is None or start < keep_from):
            start += 1
        try:
            kept = [event.model_dump(mode="json", exclude_none=True, by_alias=True) for event in events[start:]]
        except ValueError as exc:  # pydantic's: a state value it cannot write as JSON
            raise ModelError(f"the agent's ADK events are not JSON: {str(exc)[:300]}") from None
        own: dict[str, Any] = {}
        for key, value in self.session.state.items():
            if key.startswith(State.TEMP_PREFIX):
                continue
            if key.startswith(SHARED_PREFIXES):
                _size({key: value})  # JSON, or the run fails
                if self._view.get_shared(key, _MISSING) != value:
                    self._view.set_shared(key, copy.deepcopy(value))
            else:
                own[key] = value
        document = {"events": kept, "state": own}
        while _size(document) > MAX_ADK_BYTES and _drop_a_turn(document["events"], keep_from, start):
            pass
        size = _size(document)
        if size > MAX_ADK_BYTES:
            raise ModelError(
                f"the agent's ADK session is {size} bytes, over the limit of {MAX_ADK_BYTES}: lower its history"
            )
        self._view.set(ADK_KEY, document)


_MISSING: Final = object()


def _size(value: Any) -> int:
    """The bytes of ``value`` as the store writes it; ``ModelError`` when it is not JSON."""
    try:
        return len(dumps(value).encode())
    except TypeError as exc:
        raise ModelError(f"the agent's ADK session state is not JSON: {exc}") from None


def _opens_a_turn(event: Event) -> bool:
    """Whether ``event`` is a user's message (not a tool's answer): a turn may start there."""
    if event.author != "user" or event.content is None:
        return False
    return not any(part.function_response for part in event.content.parts or ())


def _drop_a_turn(events: list[dict[str, Any]], keep_from: int | None, start: int) -> bool:
    """Drop the oldest turn of ``events`` (JSON), never one a paused invocation needs: whether one was."""
    limit = len(events) if keep_from is None else max(0, keep_from - start)
    for i in range(1, limit):
        event = events[i]
        parts = (event.get("content") or {}).get("parts") or []
        if event.get("author") == "user" and not any("functionResponse" in part for part in parts):
            del events[:i]
            return True
    return False
