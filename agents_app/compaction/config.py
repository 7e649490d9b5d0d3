"""The ``compaction`` option of an agent's config, the same for every framework.

    "compaction": {"after": 40, "keep": 10, "agent": "summariser"}

``after``: how many entries past the latest summary (or the start) a session may hold before it
is compacted; ``keep``: how many of the latest entries a compaction leaves out of its summary, for
the model to see as they are; ``agent``: the tenant's agent that writes the summary (not the agent
itself). ``keep < after``, and ``after`` below what the agent shows its model (its ``history``),
so that the model always sees the summary and every entry after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from agents_app import patterns

if TYPE_CHECKING:  # the frameworks' base imports this module
    from agents_app.frameworks.base import ConfigProblems

#: The config's key.
COMPACTION: Final = "compaction"
KEYS: Final = ("after", "keep", "agent")
#: The most entries ``after`` may name.
MAX_AFTER: Final = 500

SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "required": list(KEYS),
    "description": "Summarise the session's history past `after` entries, keeping the latest `keep` as they are.",
    "properties": {
        "after": {"type": "integer", "minimum": 2, "maximum": MAX_AFTER},
        "keep": {"type": "integer", "minimum": 1, "maximum": MAX_AFTER - 1},
        "agent": {"type": "string", "pattern": patterns.anchored(patterns.NAME)},
    },
}

_NAME = re.compile(patterns.NAME)


@dataclass(frozen=True)
class Compaction:
    """A valid ``compaction`` option."""

    after: int
    keep: int
    agent: str


def compaction_of(config: Any) -> Compaction | None:
    """The agent's compaction, None when its config asks for none (or is not a valid one)."""
    value = config.get(COMPACTION) if isinstance(config, dict) else None
    if not isinstance(value, dict):
        return None
    after, keep, agent = value.get("after"), value.get("keep"), value.get("agent")
    if not (_count(after) and _count(keep) and isinstance(agent, str)):
        return None
    return Compaction(after=after, keep=keep, agent=agent)


def check_compaction(value: Any, problems: ConfigProblems, *, shown: int | None) -> None:
    """Add each bad field of a ``compaction`` option to ``problems`` (paths ``compaction.after``...).
    ``shown``: how many of the latest entries the agent shows its model (0: it reads none of the
    session's history, so a summary would never reach it; None: no bound, or not known)."""
    if not isinstance(value, dict):
        problems.add(COMPACTION, 'must be an object: {"after": N, "keep": M, "agent": NAME}')
        return
    for key in sorted(set(value) - set(KEYS)):
        problems.add(f"{COMPACTION}.{key}", "unknown option of compaction (after, keep, agent)")
    after, keep, agent = value.get("after"), value.get("keep"), value.get("agent")
    if not _count(after) or not 2 <= after <= MAX_AFTER:
        problems.add(f"{COMPACTION}.after", f"required: an integer from 2 to {MAX_AFTER}")
    elif shown == 0:
        problems.add(COMPACTION, "this agent reads none of the session's history: there is nothing to compact")
    elif shown is not None and after >= shown:
        problems.add(
            f"{COMPACTION}.after",
            f"must be less than the {shown} entries the agent shows its model (its history): "
            "the model would miss the entries between the summary and its window",
        )
    if not _count(keep) or keep < 1:
        problems.add(f"{COMPACTION}.keep", "required: an integer of 1 or more")
    elif _count(after) and keep >= after:
        problems.add(f"{COMPACTION}.keep", "must be less than after")
    if not isinstance(agent, str) or not _NAME.fullmatch(agent):
        problems.add(f"{COMPACTION}.agent", "required: the name of the tenant's agent that writes the summary")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
