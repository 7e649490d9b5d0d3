"""Where a session's latest summary is kept, and the window a run's adapter is given.

A compaction appends its summary to the history (an entry of kind ``summary``) and, in the same
commit, writes a pointer to it in the runner's own scope of the session's state
(``COMPACTION_SCOPE``: no agent's name starts with ``_``)::

    {"content": "<the summary>", "at": 123, "covers": 110, "agent": "summariser"}

``at``: the summary's number in the history; ``covers``: the number of the first entry it does
not cover. The runner loads the scope with the window, in the same read, and gives the adapter
``compacted(snapshot, shown)``: the summary as the first message, then the window's entries from
``covers`` on (summaries left out), so every framework that reads the window sends it as it sends
any message. It is a ``user`` message, the one role every adapter passes on to its model.

Frameworks that keep the agent's own history in its state (``google_adk``'s events, ``langgraph``'s
checkpoint) read no window: before a new message they replace the turns the summary covers whole
with one user message carrying it (``covered_turns`` says how many), so their model is sent the
summary and the turns after it, as every other framework's is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from sessions_app.stores.base import MESSAGE, SUMMARY, Message, Snapshot

COMPACTION_SCOPE: Final = "_compaction"
_KEY: Final = "latest"
#: What the summary is introduced with, in the message a run's model is sent.
SUMMARY_HEADING: Final = "Summary of the conversation so far:"


@dataclass(frozen=True)
class Pointer:
    """The latest summary of a session, as its pointer keeps it."""

    content: str
    at: int
    covers: int
    agent: str

    def as_dict(self) -> dict[str, Any]:
        return {"content": self.content, "at": self.at, "covers": self.covers, "agent": self.agent}


def latest_summary(snapshot: Snapshot) -> Pointer | None:
    """The pointer to the session's latest summary in ``snapshot`` (loaded with ``COMPACTION_SCOPE``)."""
    data = snapshot.state.get(COMPACTION_SCOPE, {}).get(_KEY)
    if not isinstance(data, dict):
        return None
    try:
        return Pointer(str(data["content"]), int(data["at"]), int(data["covers"]), str(data.get("agent", "")))
    except (KeyError, TypeError, ValueError):
        return None


def pointer_state(pointer: Pointer) -> dict[str, Any]:
    """The state change that points at ``pointer``'s summary."""
    return {_KEY: pointer.as_dict()}


def uncovered(total: int, pointer: Pointer | None) -> int:
    """How many entries of a history of ``total`` the latest summary does not cover (itself apart)."""
    if pointer is None:
        return total
    return total - pointer.covers - (1 if pointer.at >= pointer.covers else 0)


def summary_text(pointer: Pointer) -> str:
    """The text of the message that gives a run's model the summary."""
    return f"{SUMMARY_HEADING}\n{pointer.content}"


def covered_turns(openings: Sequence[int | None], total: int, covers: int) -> int:
    """How many of an agent's own turns (oldest first) a summary of the history's entries before
    ``covers`` covers whole. ``openings``: the number of the entry each turn's message is in the
    history (None where it is not known: a turn kept before numbers were); ``total``: the history's
    length. A turn ends where the next known one opens, the latest where the history ends; a turn
    the summary covers only in part is kept whole (its end would be lost otherwise)."""
    end, count = total, 0
    for opening in reversed(openings):
        count += end <= covers
        if opening is not None:
            end = opening
    return count


def compacted(snapshot: Snapshot, shown: int | None) -> Snapshot:
    """``snapshot`` as a run's adapter sees it: with a summary, the summary first, then the latest
    of the window's entries it does not cover, ``shown - 1`` at most (so that an adapter that
    sends its latest ``shown`` entries sends the summary too; None: all of them); summaries
    themselves left out."""
    pointer = latest_summary(snapshot)
    numbered = list(enumerate(snapshot.messages, start=snapshot.offset))
    if pointer is None:
        if all(m.kind != SUMMARY for m in snapshot.messages):
            return snapshot
        return replace(snapshot, messages=[m for m in snapshot.messages if m.kind != SUMMARY])
    after = [(n, m) for n, m in numbered if n >= pointer.covers and m.kind != SUMMARY]
    if shown is not None:
        after = after[-(shown - 1) :] if shown > 1 else []
    summary = Message("user", summary_text(pointer), pointer.agent, kind=MESSAGE)
    first = after[0][0] if after else snapshot.total
    return replace(snapshot, messages=[summary, *(m for _, m in after)], offset=first)
