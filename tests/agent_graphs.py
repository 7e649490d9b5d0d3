"""LangGraph graphs for the ``langgraph`` framework's tests, registered by name in a test's settings:

    settings.AK_AGENTS = {**settings.AK_AGENTS, "GRAPHS": {"chat": "tests.agent_graphs.chat"}}

Each is a factory ``factory(options) -> StateGraph | CompiledStateGraph``, as a deployment writes
them. Their nodes reach the agent's model through the runtime context (``GraphContext``).
"""

from __future__ import annotations

import operator
import os
from datetime import UTC, datetime
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, ToolRuntime, tools_condition
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from agents_app.frameworks.langgraph import GraphContext

#: The options each factory was called with, in order (the cache's tests count them).
BUILT: list[tuple[str, dict[str, Any]]] = []


def chat(options: dict[str, Any]) -> StateGraph:
    """One node: the agent's model answers the messages (after ``options["system"]``, if given)."""
    BUILT.append(("chat", options))
    system = [SystemMessage(options["system"])] if options.get("system") else []

    async def answer(state: MessagesState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
        return {"messages": [await runtime.context.model.ainvoke(system + state["messages"])]}

    builder = StateGraph(MessagesState, context_schema=GraphContext)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder


@tool
def get_weather(city: str) -> str:
    """The weather in ``city``."""
    return f"sunny and 18 °C in {city}"


def weather(options: dict[str, Any]) -> CompiledStateGraph:
    """A model that may call ``get_weather``, and LangGraph's ``ToolNode`` that runs it, in turn
    until the model answers (a compiled graph: a factory may return either)."""
    BUILT.append(("weather", options))

    async def agent(state: MessagesState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
        model = runtime.context.model.bind_tools([get_weather])
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState, context_schema=GraphContext)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([get_weather]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile()


def _who(context: GraphContext) -> str:
    return f"tenant={context.tenant} session={context.session_id} run={context.run_id} agent={context.agent}"


@tool
def whoami(runtime: ToolRuntime[GraphContext]) -> str:
    """Who this tool works for."""
    return _who(runtime.context)


def who(options: dict[str, Any]) -> StateGraph:
    """A node that says whom the run is for (from its runtime context), then the model, which may
    call ``whoami`` (a tool that reads the same context through LangGraph's ``ToolRuntime``)."""

    def say(state: MessagesState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
        return {"messages": [AIMessage(f"node: {_who(runtime.context)}")]}

    async def agent(state: MessagesState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
        model = runtime.context.model.bind_tools([whoami])
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState, context_schema=GraphContext)
    builder.add_node("say", say)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([whoami]))
    builder.add_edge(START, "say")
    builder.add_edge("say", "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder


def approval(options: dict[str, Any]) -> StateGraph:
    """Asks before it acts (for mode checkpoint): the user's request, then ``interrupt`` with a
    question (text, or ``{"question": ...}`` with ``options["structured"]``); the run pauses, its
    resume answers it, and the model replies to the request and the answer."""
    BUILT.append(("approval", options))

    def ask(state: MessagesState) -> dict[str, Any]:
        request = state["messages"][-1].content
        question = f"Shall I {request}?"
        answer = interrupt({"question": question} if options.get("structured") else question)
        return {"messages": [HumanMessage(f"approval: {answer}")]}

    async def act(state: MessagesState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
        return {"messages": [await runtime.context.model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState, context_schema=GraphContext)
    builder.add_node("ask", ask)
    builder.add_node("act", act)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", "act")
    builder.add_edge("act", END)
    return builder


#: The orders the graphs' ``refund`` tool refunded in this process, in order.
REFUNDED: list[str] = []


@tool
def refund(order: str) -> str:
    """Refund an order (each call also written, one line, to the file ``AK_TEST_TOOL_CALLS`` names)."""
    REFUNDED.append(order)
    if path := os.environ.get("AK_TEST_TOOL_CALLS"):
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"refund {order}\n")
    return f"Order {order} refunded."


def reviewed(options: dict[str, Any]) -> StateGraph:
    """The model may call ``refund``; its calls wait for a person, asked as LangChain's
    human-in-the-loop middleware asks (``interrupt({"action_requests": [...], "review_configs":
    [...]})``, answered ``{"decisions": [{"type": "approve"} | {"type": "reject", "message"}...]}``):
    an approved call runs, a rejected one answers the model with the rejection."""

    async def agent(state: MessagesState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
        return {"messages": [await runtime.context.model.bind_tools([refund]).ainvoke(state["messages"])]}

    def review(state: MessagesState) -> dict[str, Any]:
        calls = state["messages"][-1].tool_calls
        answer = interrupt(
            {
                "action_requests": [
                    {
                        "name": c["name"],
                        "args": c["args"],
                        "description": f"Tool execution pending approval: {c['name']}",
                    }
                    for c in calls
                ],
                "review_configs": [
                    {"action_name": c["name"], "allowed_decisions": ["approve", "reject"]} for c in calls
                ],
            }
        )
        results = []
        for call, decision in zip(calls, answer["decisions"], strict=True):
            if decision["type"] == "approve":
                results.append(ToolMessage(refund.invoke(call["args"]), tool_call_id=call["id"], name=call["name"]))
            else:
                said = decision.get("message") or f"The person rejected the call of {call['name']}."
                results.append(ToolMessage(said, tool_call_id=call["id"], name=call["name"], status="error"))
        return {"messages": results}

    builder = StateGraph(MessagesState, context_schema=GraphContext)
    builder.add_node("agent", agent)
    builder.add_node("review", review)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition, {"tools": "review", END: END})
    builder.add_edge("review", "agent")
    return builder


def blocking_chat(options: dict[str, Any]) -> StateGraph:
    """Like ``chat``, but its node calls the model synchronously (which the platform refuses)."""

    def answer(state: MessagesState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
        return {"messages": [runtime.context.model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState, context_schema=GraphContext)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder


class DatedState(MessagesState):
    at: datetime


def dated(options: dict[str, Any]) -> StateGraph:
    """Keeps a ``datetime`` in its state (which a JSON checkpoint cannot hold) and says "noted"."""

    def note(state: DatedState) -> dict[str, Any]:
        return {"at": datetime.now(UTC), "messages": [AIMessage("noted")]}

    builder = StateGraph(DatedState)
    builder.add_node("note", note)
    builder.add_edge(START, "note")
    builder.add_edge("note", END)
    return builder


class AppendedState(TypedDict):
    messages: Annotated[list, operator.add]


def appended(options: dict[str, Any]) -> StateGraph:
    """Like ``chat``, but its ``messages`` are a list that its updates are appended to
    (``operator.add``), not ``MessagesState``'s (``add_messages``)."""

    async def answer(state: AppendedState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
        return {"messages": [await runtime.context.model.ainvoke(state["messages"])]}

    builder = StateGraph(AppendedState, context_schema=GraphContext)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder
