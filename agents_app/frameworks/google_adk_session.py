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

Each turn's opening event (the user's message) carries, in its ``custom_metadata``, the number of
that message in the session's history (``TURN_KEY``): a compaction of the session (``compact``)
replaces the turns its summary covers whole with one user event carrying the summary
(``SUMMARY_KEY``), which is kept first however many events ``history`` keeps.

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
from google.genai import types

from agents_app.compaction.window import covered_turns, latest_summary, summary_text
from agents_app.frameworks.model import ModelError
from sessions_app.core import SessionView
from sessions_app.stores.base import SHARED_SCOPE, dumps

#: The key of the agent's own state that holds its ADK session.
ADK_KEY: Final = "adk"
#: The most the ADK session may take in the agent's state, as JSON.
MAX_ADK_BYTES: Final = 256 * 1024
SHARED_PREFIXES: Final = (State.APP_PREFIX, State.USER_PREFIX)
#: The keys of an event's ``custom_metadata``: the history's number of the message that opened its
#: turn; the number of the summary it carries.
TURN_KEY: Final = "ak_entry"
SUMMARY_KEY: Final = "ak_summary"


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

    def compact(self) -> int:
        """Replace the events of the turns the session's latest summary covers whole (and the
        summary they had before) with one user event carrying it; how many events it replaced."""
        pointer = latest_summary(self._view.snapshot)
        if pointer is None:
            return 0
        events = self.session.events
        turns = [i for i, event in enumerate(events) if _opens_a_turn(event) and not _is_summary(event)]
        openings = [(events[i].custom_metadata or {}).get(TURN_KEY) for i in turns]
        covered = covered_turns(openings, self._view.snapshot.total, pointer.covers)
        if not covered:
            return 0
        end = turns[covered] if covered < len(turns) else len(events)
        text = types.Content(role="user", parts=[types.Part(text=summary_text(pointer))])
        summary = Event(
            author="user", content=text, custom_metadata={SUMMARY_KEY: pointer.at}, timestamp=events[0].timestamp
        )
        events[:end] = [summary]
        return end

    def mark_turn(self, index: int) -> None:
        """Number the turn the event at ``index`` opens: its message is the history's next entry."""
        event = self.session.events[index]
        if _opens_a_turn(event):
            event.custom_metadata = {**(event.custom_metadata or {}), TURN_KEY: self._view.snapshot.total}

    def flush(self, *, history: int, keep_from: int | None = None) -> None:
        """Write the ADK session into the view: its latest ``history`` events (from a user's
        message on, so no answer is kept without its call; all from index ``keep_from`` on, which a
        paused invocation needs to go on), its state without ``temp:`` keys, and the ``user:`` and
        ``app:`` keys that changed. Raises ``ModelError`` when what is kept is over
        ``MAX_ADK_BYTES``. A summary first is kept, apart from ``history``."""
        events = self.session.events
        head = 1 if events and _is_summary(events[0]) else 0
        start = max(0, len(events) - history)
        if keep_from is not None:
            start = min(start, keep_from)
        start = max(start, head)
        while start < len(events) and not _opens_a_turn(events[start]) and (keep_from is None or start < keep_from):
            start += 1
        try:
            kept = [
                event.model_dump(mode="json", exclude_none=True, by_alias=True)
                for event in [*events[:head], *events[start:]]
            ]
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
        while _size(document) > MAX_ADK_BYTES and _drop_a_turn(document["events"], keep_from, start, head):
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


def _is_summary(event: Event) -> bool:
    return SUMMARY_KEY in (event.custom_metadata or {})


def _drop_a_turn(events: list[dict[str, Any]], keep_from: int | None, start: int, head: int) -> bool:
    """Drop the oldest turn of ``events`` (JSON) after the ``head`` first (a summary), never one a
    paused invocation needs: whether one was."""
    limit = len(events) if keep_from is None else max(0, keep_from - start + head)
    for i in range(head + 1, limit):
        event = events[i]
        parts = (event.get("content") or {}).get("parts") or []
        if event.get("author") == "user" and not any("functionResponse" in part for part in parts):
            del events[head:i]
            return True
    return False
