"""A session's paused run as its store keeps it, and pauses and answers as JSON.

A run that pauses commits, with its items and its adapter's state, a marker in the runner's own
scope of the session's state (``PAUSE_SCOPE``: no agent's name starts with ``_``): the run's id,
the id it committed under and what it waits for. The runner reads it under the session's lock with
every run (the store's load reads the scope in the same round trip as the others):

- another run on the session is refused (``SessionPaused``) while the marked run is not ended;
- a run whose process died after committing its pause is replayed as paused, not as a reply;
- the run's resume clears it when it commits its reply (or writes the new pause).

A paused run that ends without a resume (cancelled, expired) has its marker cleared
(``pause_forget``); a marker left by a failure is found stale by the next run and cleared then.
"""

from __future__ import annotations

import logging
from typing import Any

from agents_app.frameworks.base import ApprovalRequest, Decision, Pause, Resume
from sessions_app.stores.base import DELETE, SessionBusy, SessionKey, SessionStore, Snapshot, StoreError

logger = logging.getLogger(__name__)

PAUSE_SCOPE = "_paused"
_KEY = "run"


def pause_marker(snapshot: Snapshot) -> dict[str, Any] | None:
    """The session's paused-run marker in ``snapshot`` (loaded with ``PAUSE_SCOPE``): ``{"run_id",
    "commit_id", "pause"}``, or None."""
    marker = snapshot.state.get(PAUSE_SCOPE, {}).get(_KEY)
    return marker if isinstance(marker, dict) else None


def marker_state(*, run_id: str | None, commit_id: str | None, pause: Pause) -> dict[str, Any]:
    """The state change that marks the session as waiting on ``run_id``'s ``pause``."""
    return {_KEY: {"run_id": run_id, "commit_id": commit_id, "pause": pause.as_dict()}}


def cleared_state() -> dict[str, Any]:
    """The state change that clears the marker."""
    return {_KEY: DELETE}


def pause_forget(store: SessionStore, key: SessionKey, run_id: str) -> bool:
    """Clear the marker of ``run_id`` (cancelled or expired while paused), under the session's lock,
    without waiting for it: a session busy now, or a store that fails, keeps the marker, which the
    next run finds stale and clears. Returns whether it was cleared."""
    try:
        lock, snapshot = store.acquire_and_load(key, lease=10.0, wait=0, scopes=(PAUSE_SCOPE,), window=0)
    except (SessionBusy, StoreError):
        logger.warning("run %s: its pause marker stays in the store for now", run_id)
        return False
    try:
        marker = pause_marker(snapshot)
        if marker is None or marker.get("run_id") != run_id:
            return False
        store.commit_and_release(lock, expected_version=snapshot.version, state={PAUSE_SCOPE: cleared_state()})
        return True
    except StoreError:
        logger.warning("run %s: its pause marker stays in the store for now", run_id)
        return False
    finally:
        lock.release()


def pause_from_dict(data: dict[str, Any]) -> Pause:
    """The ``Pause`` that ``Pause.as_dict`` gave ``data``."""
    if data.get("kind") == "approval":
        requests = tuple(
            ApprovalRequest(id=r["id"], tool=r["tool"], arguments=dict(r.get("arguments") or {}))
            for r in data.get("requests", [])
        )
        return Pause(kind="approval", requests=requests)
    return Pause(kind=data.get("kind", "input"), prompt=data.get("prompt"))


def answer_as_dict(*, decisions: list[dict[str, Any]] | None, given_input: Any, has_input: bool) -> dict[str, Any]:
    """A resume's answer as the run keeps it (``Run.answer``): ``{"decisions": {id: {"approve",
    "message"}}}`` or ``{"input": value}``."""
    if has_input:
        return {"input": given_input}
    return {"decisions": {d["id"]: {"approve": d["approve"], "message": d.get("message")} for d in decisions or []}}


def resume_from_dict(data: dict[str, Any]) -> Resume:
    """The ``Resume`` a framework is given, from ``Run.answer``."""
    if "input" in data:
        return Resume(input=data["input"])
    decisions = {
        rid: Decision(approve=bool(d["approve"]), message=d.get("message")) for rid, d in data["decisions"].items()
    }
    return Resume(decisions=decisions)


def answer_problems(
    pause: dict[str, Any], *, decisions: list[dict[str, Any]] | None, has_input: bool
) -> dict[str, list[str]]:
    """What does not fit ``pause`` in an answer: ``{field: [messages]}``, each request id that is
    missing, unknown or decided twice named; ``{}`` when it fits."""
    if pause.get("kind") != "approval":
        if not has_input:
            return {"input": ['The run waits for an answer to its question: send {"input": ...}.']}
        return {}
    if decisions is None or has_input:
        return {"decisions": ['The run waits for decisions on its tool calls: send {"decisions": [...]}.']}
    waited = [r["id"] for r in pause.get("requests", [])]
    given = [d["id"] for d in decisions]
    messages = [f"No decision for request id {rid!r}." for rid in waited if rid not in given]
    messages += [f"Unknown request id {rid!r}: the run waits on {waited!r}." for rid in given if rid not in waited]
    messages += [f"Two decisions for request id {rid!r}." for rid in sorted({g for g in given if given.count(g) > 1})]
    return {"decisions": messages} if messages else {}
