"""A LangGraph checkpoint as JSON: what a ``langgraph`` agent in checkpoint mode keeps between runs.

A run seeds an ``InMemorySaver`` of its own with the agent's stored checkpoint (``seed``) and reads
the newest one back (``export``), with its pending writes (and its subgraphs' while the graph
waits at an interrupt). The format is plain JSON, never pickle or msgpack, naming no class or
module, so a stored checkpoint can make the server build only the few types listed here::

    {"format": "ak.langgraph/1", "graph": "approval",
     "namespaces": {"": {"checkpoint": {...}, "metadata": {...}, "writes": [[task_id, channel, value], ...]}}}

Values are JSON as they are, except these, written as objects with a ``"$type"``:

- ``{"$type": "message", "value": {"type": "ai", "data": {...}}}``: a LangChain message
  (``langchain_core.messages.message_to_dict``, read back by ``messages_from_dict``);
- ``{"$type": "interrupt", "value": ..., "id": ..., "schema": ...}``: ``langgraph.types.Interrupt``;
- ``{"$type": "send", "node": ..., "arg": ...}``: ``langgraph.types.Send``;
- ``{"$type": "tuple", "items": [...]}``; ``{"$type": "dict", "value": {...}}``: a dict that has a
  ``"$type"`` key of its own.

Anything else in the graph's state (a datetime, bytes, a custom class...) raises
``CheckpointNotJSON``, naming where it is: the graph must keep JSON in its state.
"""

from __future__ import annotations

import math
from typing import Any, Final

from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Interrupt, Send

FORMAT: Final = "ak.langgraph/1"
TAG: Final = "$type"
#: The thread every run's own saver uses: it holds one session's agent, never more.
THREAD: Final = "session"


class CheckpointNotJSON(TypeError):
    """The graph's state holds a value this format does not keep; the message says where."""


class CheckpointUnreadable(ValueError):
    """A stored checkpoint is not one this format reads (damaged, or written by something else)."""


def encode(value: Any, where: str = "state") -> Any:
    """``value`` as JSON data (see the module's docstring); raises ``CheckpointNotJSON``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CheckpointNotJSON(f"{where} is {value}, which JSON cannot hold")
        return value
    if isinstance(value, list):
        return [encode(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if type(value) is tuple:
        return {TAG: "tuple", "items": [encode(item, f"{where}[{i}]") for i, item in enumerate(value)]}
    if isinstance(value, dict):
        return _encode_dict(value, where)
    if isinstance(value, BaseMessage):
        return {TAG: "message", "value": _encode_message(value, where)}
    if isinstance(value, Interrupt):
        return {
            TAG: "interrupt",
            "value": encode(value.value, f"{where}.value"),
            "id": value.id,
            "schema": encode(value.response_schema, f"{where}.response_schema"),
        }
    if isinstance(value, Send):
        return {TAG: "send", "node": value.node, "arg": encode(value.arg, f"{where}.arg")}
    raise CheckpointNotJSON(f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which is not JSON")


def _encode_dict(value: dict[Any, Any], where: str) -> dict[str, Any]:
    encoded: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise CheckpointNotJSON(f"{where} has the key {key!r}, which is not a string")
        encoded[key] = encode(item, f"{where}.{key}")
    return {TAG: "dict", "value": encoded} if TAG in encoded else encoded


def _encode_message(message: BaseMessage, where: str) -> dict[str, Any]:
    as_dict = message_to_dict(message)
    try:
        messages_from_dict([as_dict])  # a message type that reads back, e.g. not a subclass of our own
    except (ValueError, TypeError, KeyError):
        raise CheckpointNotJSON(f"{where} is a {type(message).__qualname__}, a message type not kept") from None
    return encode(as_dict, where)


def decode(value: Any) -> Any:
    """The value ``encode`` wrote; raises ``CheckpointUnreadable``."""
    if isinstance(value, list):
        return [decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    if TAG not in value:
        return {key: decode(item) for key, item in value.items()}
    kind = value[TAG]
    try:
        if kind == "dict":
            return {key: decode(item) for key, item in value["value"].items()}
        if kind == "tuple":
            return tuple(decode(item) for item in value["items"])
        if kind == "message":
            return messages_from_dict([decode(value["value"])])[0]
        if kind == "interrupt":
            return Interrupt(value=decode(value["value"]), id=value["id"], response_schema=decode(value["schema"]))
        if kind == "send":
            return Send(value["node"], decode(value["arg"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointUnreadable(f"a stored {kind!r} does not read back: {type(exc).__name__}") from None
    raise CheckpointUnreadable(f"unknown {TAG} {kind!r}")


def thread_config(namespace: str = "") -> dict[str, Any]:
    return {"configurable": {"thread_id": THREAD, "checkpoint_ns": namespace}}


async def seed(saver: BaseCheckpointSaver[Any], document: dict[str, Any]) -> None:
    """Put the checkpoints of ``document`` (``export``'s) into an empty ``saver``, with their
    pending writes. Raises ``CheckpointUnreadable``."""
    if document.get("format") != FORMAT or not isinstance(document.get("namespaces"), dict):
        raise CheckpointUnreadable(f"not an {FORMAT} checkpoint")
    for namespace, entry in document["namespaces"].items():
        try:
            checkpoint, metadata = decode(entry["checkpoint"]), decode(entry["metadata"])
            writes = [(str(task), str(channel), decode(value)) for task, channel, value in entry["writes"]]
            stored = await saver.aput(thread_config(namespace), checkpoint, metadata, checkpoint["channel_versions"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointUnreadable(f"the stored checkpoint does not read back: {type(exc).__name__}") from None
        by_task: dict[str, list[tuple[str, Any]]] = {}  # each task's writes, in their order
        for task, channel, value in writes:
            by_task.setdefault(task, []).append((channel, value))
        for task, task_writes in by_task.items():
            await saver.aput_writes(stored, task_writes, task)


async def export(saver: BaseCheckpointSaver[Any], graph: str, *, with_subgraphs: bool) -> dict[str, Any]:
    """The newest checkpoint of the run's thread (and, with ``with_subgraphs``, the newest of each
    subgraph's namespace) as JSON data. Raises ``CheckpointNotJSON``."""
    namespaces: dict[str, Any] = {}
    for namespace, found in (await _newest(saver)).items():
        if namespace and not with_subgraphs:
            continue
        checkpoint = dict(found.checkpoint)
        namespaces[namespace] = {
            "checkpoint": encode(checkpoint, "checkpoint"),
            "metadata": encode(dict(found.metadata or {}), "checkpoint metadata"),
            "writes": [
                [task, channel, encode(value, f"pending write {channel}")]
                for task, channel, value in found.pending_writes or ()
            ],
        }
    return {"format": FORMAT, "graph": graph, "namespaces": namespaces}


async def _newest(saver: BaseCheckpointSaver[Any]) -> dict[str, Any]:
    """The newest checkpoint tuple of each namespace: the one no other names as its parent (not the
    one with the highest id: ids come from clocks, and the stored one may come from a machine whose
    clock is ahead)."""
    found: dict[str, dict[str, Any]] = {}
    parents: set[tuple[str, str]] = set()
    async for saved in saver.alist({"configurable": {"thread_id": THREAD}}):
        configurable = saved.config["configurable"]
        namespace = configurable.get("checkpoint_ns", "")
        found.setdefault(namespace, {})[configurable["checkpoint_id"]] = saved
        if saved.parent_config is not None:
            parents.add((namespace, saved.parent_config["configurable"]["checkpoint_id"]))
    newest: dict[str, Any] = {}
    for namespace, saved_by_id in found.items():
        leaves = [saved for id, saved in saved_by_id.items() if (namespace, id) not in parents]
        newest[namespace] = max(leaves or saved_by_id.values(), key=lambda saved: saved.checkpoint["id"])
    return newest
