"""One run of a ``langgraph`` agent (imported by ``LangGraphFramework.run``: it needs LangGraph)."""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any, Final

import orjson
from langchain_core.callbacks import UsageMetadataCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, RemoveMessage, ToolMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.message import REMOVE_ALL_MESSAGES, add_messages
from langgraph.types import Command

from agents_app.compaction.window import covered_turns, latest_summary, summary_text
from agents_app.frameworks.base import ApprovalRequest, Pause, Reply, Resume, Usage
from agents_app.frameworks.langgraph_checkpoint import (
    THREAD,
    CheckpointNotJSON,
    CheckpointUnreadable,
    export,
    seed,
    thread_config,
)
from agents_app.frameworks.model import ModelError
from sessions_app.core import SessionView
from sessions_app.stores.base import DELETE, TOOL_CALL, TOOL_RESULT

logger = logging.getLogger(__name__)

#: The most a checkpoint may take in the agent's state, as JSON.
MAX_CHECKPOINT_BYTES: Final = 256 * 1024
#: The key of the agent's own state that holds its checkpoint.
CHECKPOINT_KEY: Final = "checkpoint"
#: The key of the agent's own state that marks a paused run: the ids of the messages it added before
#: it paused (the items it commits when it completes), the tokens it spent and the text it streamed.
PAUSED: Final = "paused_run"
#: The id of the user's message of a turn in a checkpoint: the number of its entry in the session's
#: history first (a compaction reads which turns its summary covers), then a unique part.
TURN_ID: Final = re.compile(r"ak-entry-(\d+)-")
#: The id of the message that carries the session's latest summary, in a compacted checkpoint.
SUMMARY_ID: Final = "ak-summary-"
#: The most of a tool's output (or of a call's line) an item keeps.
MAX_ITEM_CHARS: Final = 16_000
#: Put between the texts of two model calls that were both streamed (see ``Deltas``).
SEPARATOR: Final = "\n\n"
INTERRUPT: Final = "__interrupt__"


class GraphRun:
    """Run ``graph`` (the shared compiled graph ``name``, never changed) for one agent on one
    session, in ``mode`` (``messages``: with the session's latest ``history`` text messages;
    ``checkpoint``: on its stored checkpoint). ``context`` is the graph's runtime context."""

    def __init__(self, graph: Any, session: SessionView, context: Any, *, name: str, mode: str, history: int) -> None:
        self._graph = graph
        self._name, self._mode, self._history = name, mode, history
        self._session = session
        self._context = context
        self._usage = UsageMetadataCallbackHandler()
        self._deltas = Deltas(session) if session.streaming else None

    async def run(self, message: str) -> Reply | Pause:
        """Answer ``message``, or pause at an interrupt; raises ``ModelError`` for what the graph's
        state cannot be, and lets the graph's and the model's own errors through."""
        if self._mode == "checkpoint":
            return await self._checkpoint_mode(message)
        return await self._messages_mode(message)

    async def resume(self, pause: Pause, answer: Resume) -> Reply | Pause:
        """Go on from the interrupt the stored checkpoint waits at, with the person's ``answer``."""
        paused = self._session.get(PAUSED)
        if self._mode != "checkpoint" or not isinstance(paused, dict):
            raise ModelError("the agent has no paused run to resume (its state was removed or replaced)")
        saver, graph = await self._saved_graph()
        before = await graph.aget_state(thread_config())
        if not before.interrupts:
            raise ModelError("the graph's checkpoint waits at no interrupt: there is nothing to resume")
        waiting = before.interrupts[0]
        ids = {m.id for m in before.values.get("messages", ()) if isinstance(m, BaseMessage)}
        known = ids - set(paused.get("added", ()))  # what the run added before it paused is its own
        command = Command(resume={waiting.id: resume_value(waiting.value, answer)})
        if self._deltas is not None:
            self._deltas = Deltas(self._session, sent=str(paused.get("sent", "")))
        return await self._go(saver, graph, command, known, paused)

    async def _messages_mode(self, message: str) -> Reply:
        window = self._session.text_messages()[-self._history :] if self._history else []
        sent = [
            (HumanMessage if e.role == "user" else AIMessage)(e.content, id=f"ak-{i}") for i, e in enumerate(window)
        ]
        sent.append(HumanMessage(message, id=uuid.uuid4().hex))
        messages, interrupts = await self._drive(self._graph, {"messages": sent}, {})
        if interrupts:
            raise ModelError("the graph stopped at an interrupt: graphs that wait for the user run in mode checkpoint")
        return self._reply(added(messages, {m.id for m in sent}), None)

    async def _checkpoint_mode(self, message: str) -> Reply | Pause:
        saver, graph = await self._saved_graph()
        before = await graph.aget_state(thread_config())
        stored = [m for m in before.values.get("messages", ()) if isinstance(m, BaseMessage)]
        human = HumanMessage(message, id=f"ak-entry-{self._session.total_messages}-{uuid.uuid4().hex}")
        sent = [*self._compacted(stored), human]
        known = {m.id for m in stored} | {m.id for m in sent}
        if self._session.get(PAUSED) is not None:  # a run paused before, and cancelled: forgotten
            self._session.set(PAUSED, DELETE)
        # New input: an interrupt the graph still waited at is dropped by LangGraph, which runs anew.
        return await self._go(saver, graph, {"messages": sent}, known, None)

    def _compacted(self, stored: list[BaseMessage]) -> list[BaseMessage]:
        """The messages that replace the checkpoint's turns the session's latest summary covers
        whole (and the summary they had before) with one user message carrying it, all others
        kept (``add_messages`` reads them so: remove all, then these); none when it covers none.
        A turn is a user's message and what follows it up to the next."""
        pointer = latest_summary(self._session.snapshot)
        reducer = getattr(self._graph.channels.get("messages"), "operator", None)
        if pointer is None or reducer is not add_messages:
            return []
        turns = [
            i for i, m in enumerate(stored) if isinstance(m, HumanMessage) and not str(m.id).startswith(SUMMARY_ID)
        ]
        openings = [int(found[1]) if (found := TURN_ID.match(str(stored[i].id))) else None for i in turns]
        covered = covered_turns(openings, self._session.total_messages, pointer.covers)
        if not covered:
            return []
        end = turns[covered] if covered < len(turns) else len(stored)
        summary = HumanMessage(summary_text(pointer), id=f"{SUMMARY_ID}{pointer.at}")
        return [RemoveMessage(id=REMOVE_ALL_MESSAGES), summary, *stored[end:]]

    async def _saved_graph(self) -> tuple[InMemorySaver, Any]:
        """A saver of the run's own, seeded with the stored checkpoint, and the graph on it."""
        if any(isinstance(channel, DeltaChannel) for channel in self._graph.channels.values()):
            raise ModelError(
                "a graph with a DeltaChannel cannot run in mode checkpoint: only its latest checkpoint is kept"
            )
        saver = InMemorySaver()
        graph = self._graph.copy(update={"checkpointer": saver})  # the run's own; the shared one stays as it is
        await self._seed(saver)
        return saver, graph

    async def _go(
        self, saver: InMemorySaver, graph: Any, graph_input: Any, known: set[Any], paused: dict[str, Any] | None
    ) -> Reply | Pause:
        """Run the graph from ``graph_input`` and keep its checkpoint: the reply, or a ``Pause`` at
        an interrupt (what the run added so far, and its tokens, kept under ``PAUSED``)."""
        messages, interrupts = await self._drive(graph, graph_input, {"configurable": {"thread_id": THREAD}})
        await self._store(saver, with_subgraphs=bool(interrupts))
        new = added(messages, known)
        usage = summed(usage_of(self._usage), paused)
        if interrupts:
            spent = [usage.prompt_tokens, usage.completion_tokens] if usage else [0, 0]
            sent = self._deltas.sent if self._deltas is not None else ""
            self._session.set(PAUSED, {"added": [m.id for m in new], "usage": spent, "sent": sent})
            return pause_for(interrupts[0].value)
        if paused is not None:
            self._session.set(PAUSED, DELETE)
        return self._reply(new, usage)

    async def _seed(self, saver: InMemorySaver) -> None:
        stored = self._session.get(CHECKPOINT_KEY)
        if not stored:
            return
        if not isinstance(stored, dict) or stored.get("graph") != self._name:
            logger.info("agent %s: the stored checkpoint is another graph's; starting afresh", self._session.agent)
            return
        try:
            await seed(saver, stored)
        except CheckpointUnreadable as exc:
            raise ModelError(f"the agent's stored checkpoint cannot be read: {exc}") from None

    async def _store(self, saver: InMemorySaver, *, with_subgraphs: bool) -> None:
        try:
            document = await export(saver, self._name, with_subgraphs=with_subgraphs)
        except CheckpointNotJSON as exc:
            raise ModelError(f"the graph's checkpoint cannot be kept: {exc}") from None
        size = len(orjson.dumps(document))  # what the store keeps, near enough
        if size > MAX_CHECKPOINT_BYTES:
            raise ModelError(
                f"the graph's checkpoint is {size} bytes, over the limit of {MAX_CHECKPOINT_BYTES} "
                "(MAX_CHECKPOINT_BYTES): trim the graph's state"
            )
        self._session.set(CHECKPOINT_KEY, document)

    async def _drive(
        self, graph: Any, graph_input: Any, config: dict[str, Any]
    ) -> tuple[list[BaseMessage], tuple[Any, ...]]:
        """Run the graph to its end or to an interrupt, passing the streamed text on; return its
        messages at the end and the interrupts it stopped at."""
        modes = ["values", "messages"] if self._deltas is not None else ["values"]
        final: Any = None
        interrupts: tuple[Any, ...] = ()
        stream = graph.astream(
            graph_input, {**config, "callbacks": [self._usage]}, context=self._context, stream_mode=modes
        )
        async for mode, chunk in stream:
            if mode == "messages":
                self._deltas.take(chunk[0])  # type: ignore[union-attr]
            elif isinstance(chunk, dict) and INTERRUPT in chunk:
                interrupts = tuple(chunk[INTERRUPT])
                final = {key: value for key, value in chunk.items() if key != INTERRUPT} or final
            else:
                final = chunk
        if not isinstance(final, dict) or not isinstance(final.get("messages"), list):
            raise ModelError("the graph's state has no list of messages (a graph here uses MessagesState)")
        return final["messages"], interrupts

    def _reply(self, new: list[BaseMessage], usage: Usage | None) -> Reply:
        record_items(self._session, new)
        answers = [m for m in new if isinstance(m, AIMessage)]
        if not answers:
            raise ModelError("the graph ended without an AI message to reply with")
        text = str(answers[-1].text)
        if self._deltas is not None:
            text = self._deltas.finish(text)
        return Reply(text, usage if usage is not None else usage_of(self._usage))


def pause_for(value: Any) -> Pause:
    """The pause of a graph stopped at an interrupt of ``value``: an approval when the value is
    shaped as LangChain's human-in-the-loop middleware asks (``{"action_requests": [{"name",
    "args"}...]}``, a request ``action_<n>`` per action), else a question whose prompt is the value."""
    prompt = json.loads(json.dumps(value, ensure_ascii=False, default=str))  # JSON, as the API shows it
    actions = prompt.get("action_requests") if isinstance(prompt, dict) else None
    if isinstance(actions, list) and actions and all(_is_action(action) for action in actions):
        requests = tuple(
            ApprovalRequest(id=f"action_{i}", tool=action["name"], arguments=action.get("args") or {})
            for i, action in enumerate(actions, start=1)
        )
        return Pause(kind="approval", requests=requests)
    return Pause(kind="input", prompt=prompt)


def _is_action(action: Any) -> bool:
    return isinstance(action, dict) and isinstance(action.get("name"), str) and isinstance(action.get("args", {}), dict)


def resume_value(value: Any, answer: Resume) -> Any:
    """What ``Command(resume=...)`` gives the interrupt of ``value``: for an approval, the
    middleware's ``{"decisions": [...]}`` in its actions' order; else the person's input."""
    pause = pause_for(value)
    if pause.kind != "approval":
        return answer.input
    decisions = []
    for request in pause.requests:
        decision = answer.decisions.get(request.id)
        if decision is None:
            raise ModelError(f"no decision for the request {request.id!r}")
        if decision.approve:
            decisions.append({"type": "approve"})
        else:
            decisions.append({"type": "reject", **({"message": decision.message} if decision.message else {})})
    return {"decisions": decisions}


def summed(usage: Usage | None, paused: dict[str, Any] | None) -> Usage | None:
    """``usage`` and the tokens the run spent before it paused (kept in ``paused``)."""
    before = paused.get("usage") if paused else None
    if not isinstance(before, list) or len(before) != 2 or not any(before):
        return usage
    now = usage or Usage()
    return Usage(now.prompt_tokens + int(before[0]), now.completion_tokens + int(before[1]))


def added(messages: list[BaseMessage], known: set[str | None]) -> list[BaseMessage]:
    """The messages the graph added: those that were not in its input or its stored state."""
    return [m for m in messages if isinstance(m, BaseMessage) and m.id not in known]


def record_items(session: SessionView, messages: list[BaseMessage]) -> None:
    """The tool calls and tool results among the messages a run added, as the run's items."""
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                arguments = json.loads(json.dumps(call.get("args") or {}, default=str))
                line = f"{call['name']}({json.dumps(arguments, ensure_ascii=False)})"
                data = {"call_id": call.get("id"), "name": call["name"], "arguments": arguments}
                session.append(TOOL_CALL, data, content=capped(line))
        elif isinstance(message, ToolMessage):
            output = capped(str(message.text))
            data = {"call_id": message.tool_call_id, "name": message.name, "output": output}
            session.append(TOOL_RESULT, data, content=output)


def capped(text: str) -> str:
    return text if len(text) <= MAX_ITEM_CHARS else text[:MAX_ITEM_CHARS] + "…"


def usage_of(handler: UsageMetadataCallbackHandler) -> Usage | None:
    """The tokens the run's model calls reported, summed; None when none did."""
    counted = list(handler.usage_metadata.values())
    if not counted:
        return None
    return Usage(
        sum(int(usage.get("input_tokens") or 0) for usage in counted),
        sum(int(usage.get("output_tokens") or 0) for usage in counted),
    )


class Deltas:
    """The reply's pieces, passed on as the graph's model calls produce them.

    The pieces must add up to the reply, and which model call gives the reply is known only when
    the graph ends. So the text of each model call is passed on as it comes (but not once the
    call has begun to call tools), and ``finish`` sends what the reply has beyond what was sent.
    When something streamed is not the start of the reply (a call that spoke, then called tools),
    the reply becomes what was streamed, then ``SEPARATOR`` and the reply unless it ended with it
    already: what the user saw is what is kept. A model call whose text is not for the user is
    tagged ``nostream`` (LangGraph's tag for that), and is not streamed.
    """

    def __init__(self, session: SessionView, sent: str = "") -> None:
        """``sent``: what the run streamed before it paused (a resumed run's reply goes on from it)."""
        self._session = session
        self._sent = sent
        self._call: str | None = None
        self._calling_tools: set[str | None] = set()

    def take(self, chunk: Any) -> None:
        """One item of LangGraph's ``messages`` stream."""
        if not isinstance(chunk, AIMessageChunk):
            return
        if chunk.tool_call_chunks:
            self._calling_tools.add(chunk.id)
        text = str(chunk.text)
        if not text or chunk.id in self._calling_tools:
            return
        if self._sent and chunk.id != self._call:
            self._send(SEPARATOR)
        self._call = chunk.id
        self._send(text)

    def finish(self, reply: str) -> str:
        """Send the rest of ``reply``; return the reply the pieces add up to."""
        if reply.startswith(self._sent):
            self._send(reply[len(self._sent) :])
            return reply
        if not self._sent.endswith(reply):
            self._send(SEPARATOR + reply)
        return self._sent

    @property
    def sent(self) -> str:
        return self._sent

    def _send(self, text: str) -> None:
        if text:
            self._sent += text
            self._session.emit_delta(text)
