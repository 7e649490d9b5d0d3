"""The test model server (``tests/modelserver.py``) through the clients that will talk to it: the
official ``openai`` SDK (its own transport and a plain ``httpx`` one) and ``httpx`` by hand.

No database: these are plain sync tests that run their coroutines with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from tests.modelserver import ModelServer, Reply, stamps

T = TypeVar("T")

HI = [{"role": "user", "content": "Hi"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def with_client(server: ModelServer, use: Callable[[AsyncOpenAI], Awaitable[T]], **options: Any) -> T:
    """Run ``use(client)`` with an SDK client on ``server``: no retries, closed afterwards."""

    async def main() -> T:
        async with AsyncOpenAI(base_url=server.url, api_key="sk-test", **{"max_retries": 0, **options}) as client:
            return await use(client)

    return asyncio.run(main())


async def collect(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


# --- plain answers -------------------------------------------------------------------------------


def test_plain_reply(model_server: ModelServer) -> None:
    model_server.reply("Hello there!", usage=(7, 3))

    completion = with_client(
        model_server,
        lambda c: c.chat.completions.create(model="gpt-test", messages=HI, temperature=0.2, max_tokens=50),
    )

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-test"
    choice = completion.choices[0]
    assert (choice.index, choice.finish_reason) == (0, "stop")
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello there!"
    assert choice.message.tool_calls is None
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 3)
    assert completion.usage.total_tokens == 10


def test_queued_replies_come_in_order_then_the_default(model_server: ModelServer) -> None:
    model_server.reply("one")
    model_server.queue(Reply("two", usage=None))

    async def three(client: AsyncOpenAI) -> list[Any]:
        return [await client.chat.completions.create(model="m", messages=HI) for _ in range(3)]

    first, second, third = with_client(model_server, three)

    assert first.choices[0].message.content == "one"
    assert second.choices[0].message.content == "two"
    assert second.usage is None
    assert third.choices[0].message.content == "reply to: Hi"


def test_default_reply_echoes_the_last_user_message(model_server: ModelServer) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": "second "}, {"type": "text", "text": "question"}]},
    ]

    completion = with_client(model_server, lambda c: c.chat.completions.create(model="m", messages=messages))

    assert completion.choices[0].message.content == "reply to: second question"


def test_reply_with_answers_from_the_request(model_server: ModelServer) -> None:
    """A whole tool loop: the model asks for a tool, is sent its result, and answers with text."""

    def answer(body: dict[str, Any]) -> Reply:
        last = body["messages"][-1]
        if last["role"] == "tool":
            return Reply(f"It is {json.loads(last['content'])['sky']} in Paris.")
        return Reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])

    model_server.reply_with(answer)

    async def loop(client: AsyncOpenAI) -> str | None:
        messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
        first = await client.chat.completions.create(model="m", messages=messages, tools=[WEATHER_TOOL])
        call = first.choices[0].message.tool_calls[0]
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"sky": "sunny"})})
        second = await client.chat.completions.create(model="m", messages=messages, tools=[WEATHER_TOOL])
        return second.choices[0].message.content

    assert with_client(model_server, loop) == "It is sunny in Paris."
    sent = model_server.last.body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2]["tool_call_id"] == sent[1]["tool_calls"][0]["id"]


# --- streams -------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["sdk", "httpx"])
def test_streamed_reply_deltas_concatenate_and_end_with_usage(model_server: ModelServer, transport: str) -> None:
    content = "The quick  brown fox jumps\nover the lazy dog."
    model_server.reply(content, usage=(12, 9))
    options: dict[str, Any] = {"http_client": httpx.AsyncClient()} if transport == "httpx" else {}

    async def stream(client: AsyncOpenAI) -> list[Any]:
        return await collect(
            await client.chat.completions.create(
                model="m", messages=HI, stream=True, stream_options={"include_usage": True}
            )
        )

    chunks = with_client(model_server, stream, **options)

    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    deltas = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]
    assert len(deltas) == 9
    assert "".join(deltas) == content
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (12, 9)
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_streamed_reply_without_include_usage_has_no_usage_chunk(model_server: ModelServer) -> None:
    async def stream(client: AsyncOpenAI) -> list[Any]:
        return await collect(await client.chat.completions.create(model="m", messages=HI, stream=True))

    chunks = with_client(model_server, stream)

    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "reply to: Hi"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in chunks)


# --- tool calls ----------------------------------------------------------------------------------


def test_tool_calls_plain(model_server: ModelServer) -> None:
    model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])

    completion = with_client(
        model_server, lambda c: c.chat.completions.create(model="m", messages=HI, tools=[WEATHER_TOOL])
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert model_server.last.body["tools"] == [WEATHER_TOOL]


def test_tool_calls_streamed(model_server: ModelServer) -> None:
    calls = [
        {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
        {"name": "get_time", "arguments": {"timezone": "Europe/Paris"}},
    ]
    model_server.reply("Let me check.", tool_calls=calls)

    async def stream(client: AsyncOpenAI) -> list[Any]:
        return await collect(
            await client.chat.completions.create(model="m", messages=HI, tools=[WEATHER_TOOL], stream=True)
        )

    chunks = with_client(model_server, stream)

    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Let me check."
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assembled: dict[int, dict[str, str]] = {}
    pieces = 0
    for chunk in chunks:
        for delta in chunk.choices[0].delta.tool_calls or []:
            call = assembled.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += delta.id or ""
            call["name"] += (delta.function.name or "") if delta.function else ""
            call["arguments"] += (delta.function.arguments or "") if delta.function else ""
            pieces += 1
    assert pieces > len(calls) * 2  # the arguments came over several chunks
    assert [call["name"] for call in assembled.values()] == ["get_weather", "get_time"]
    assert [json.loads(call["arguments"]) for call in assembled.values()] == [c["arguments"] for c in calls]
    assert all(call["id"].startswith("call_") for call in assembled.values())
    assert assembled[0]["id"] != assembled[1]["id"]


def test_tool_calls_streamed_through_the_sdks_accumulating_helper(model_server: ModelServer) -> None:
    model_server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}], usage=(20, 4))

    async def final(client: AsyncOpenAI) -> Any:
        async with client.chat.completions.stream(
            model="m", messages=HI, tools=[WEATHER_TOOL], stream_options={"include_usage": True}
        ) as stream:
            return await stream.get_final_completion()

    completion = with_client(model_server, final)

    call = completion.choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage.total_tokens == 24


# --- what it was sent ----------------------------------------------------------------------------


def test_records_requests(model_server: ModelServer) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]

    async def two(client: AsyncOpenAI) -> None:
        await client.chat.completions.create(model="gpt-a", messages=messages, temperature=0.5)
        await client.chat.completions.create(model="gpt-b", messages=HI, stream=True)

    with_client(model_server, two)

    first, second = model_server.requests
    assert (first.method, first.path) == ("POST", "/v1/chat/completions")
    assert first.headers["authorization"] == "Bearer sk-test"
    assert first.headers["content-type"] == "application/json"
    assert first.body == {"model": "gpt-a", "messages": messages, "temperature": 0.5}
    assert second.body["stream"] is True
    assert model_server.last == second
    model_server.clear()
    assert model_server.requests == []
    with pytest.raises(LookupError):
        _ = model_server.last


def test_lists_the_models_it_was_asked_for(model_server: ModelServer) -> None:
    async def models(client: AsyncOpenAI) -> list[str]:
        await client.chat.completions.create(model="gpt-asked", messages=HI)
        return [model.id async for model in client.models.list()]

    assert with_client(model_server, models) == ["test-model", "gpt-asked"]
    assert model_server.last.method == "GET"
    assert model_server.last.path == "/v1/models"


# --- failures ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (429, openai.RateLimitError),
    ],
)
def test_fail_answers_the_status_with_an_openai_error(
    model_server: ModelServer, status: int, error: type[openai.APIStatusError]
) -> None:
    model_server.fail(status, "on purpose")

    async def twice(client: AsyncOpenAI) -> Any:
        with pytest.raises(error) as raised:
            await client.chat.completions.create(model="m", messages=HI)
        assert raised.value.status_code == status
        assert raised.value.message.endswith("on purpose")
        assert isinstance(raised.value.body, dict)
        assert set(raised.value.body) >= {"message", "type", "code"}
        return await client.chat.completions.create(model="m", messages=HI)  # only the next one failed

    assert with_client(model_server, twice).choices[0].message.content == "reply to: Hi"


def test_fail_times_and_the_sdks_retries(model_server: ModelServer) -> None:
    model_server.fail(500, times=2, headers={"retry-after-ms": "10"})  # the SDK waits as it is told

    completion = with_client(model_server, lambda c: c.chat.completions.create(model="m", messages=HI), max_retries=2)

    assert completion.choices[0].message.content == "reply to: Hi"
    assert len(model_server.requests) == 3
    assert model_server.requests[1].headers["x-stainless-retry-count"] == "1"


def test_fail_through_httpx(model_server: ModelServer) -> None:
    model_server.fail(502, {"error": {"message": "bad gateway", "type": "server_error", "code": None}})
    with httpx.Client(base_url=model_server.url) as client:
        response = client.post("/chat/completions", json={"model": "m", "messages": HI})
        assert response.status_code == 502
        assert response.json() == {"error": {"message": "bad gateway", "type": "server_error", "code": None}}
        assert client.post("/chat/completions", json={"model": "m", "messages": HI}).status_code == 200


def test_fail_mid_stream_raises_during_iteration(model_server: ModelServer) -> None:
    model_server.reply("one two three four five six")
    model_server.fail_mid_stream(after_chunks=3)

    async def broken(client: AsyncOpenAI) -> tuple[list[str], list[Any]]:
        received: list[str] = []
        stream = await client.chat.completions.create(model="m", messages=HI, stream=True)
        with pytest.raises(openai.APIConnectionError):
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content)
        # The next stream is whole again.
        return received, await collect(await client.chat.completions.create(model="m", messages=HI, stream=True))

    received, whole = with_client(model_server, broken)

    assert received == ["", "one ", "two "]
    assert "".join(c.choices[0].delta.content or "" for c in whole) == "reply to: Hi"


def test_fail_mid_stream_through_httpx(model_server: ModelServer) -> None:
    model_server.fail_mid_stream(after_chunks=1)
    lines: list[str] = []
    with (
        httpx.Client(base_url=model_server.url) as client,
        client.stream("POST", "/chat/completions", json={"model": "m", "messages": HI, "stream": True}) as response,
    ):
        assert response.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            for line in response.iter_lines():
                lines.append(line)
    assert [line for line in lines if line] == [lines[0]]
    assert json.loads(lines[0].removeprefix("data: "))["choices"][0]["delta"] == {"role": "assistant", "content": ""}


def test_bad_requests_are_answered_400_without_using_the_script(model_server: ModelServer) -> None:
    model_server.reply("kept")
    with httpx.Client(base_url=model_server.url) as client:
        assert client.post("/chat/completions", content=b"{not json").status_code == 400
        missing = client.post("/chat/completions", json={"messages": HI})
        assert missing.status_code == 400
        assert missing.json()["error"]["type"] == "invalid_request_error"
        assert client.post("/embeddings", json={"model": "m", "input": "x"}).status_code == 404
        kept = client.post("/chat/completions", json={"model": "m", "messages": HI})
        assert kept.json()["choices"][0]["message"]["content"] == "kept"


# --- httpx by hand -------------------------------------------------------------------------------


def test_plain_answer_over_httpx_keeps_the_connection(model_server: ModelServer) -> None:
    body = {"model": "m", "messages": HI}
    local_ports: set[int] = set()
    with httpx.Client(base_url=model_server.url) as client:
        responses = []
        for payload in (body, {**body, "stream": True}, body):
            responses.append(client.post("/chat/completions", json=payload))
            local_ports.add(responses[-1].extensions["network_stream"].get_extra_info("client_addr")[1])
    first, stream, second = responses
    assert first.http_version == "HTTP/1.1"
    assert first.headers["content-type"] == "application/json"
    assert int(first.headers["content-length"]) == len(first.content)
    assert first.json()["choices"][0]["message"] == {"role": "assistant", "content": "reply to: Hi"}
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.text.endswith("data: [DONE]\n\n")
    assert second.status_code == 200
    assert len({r.headers["x-request-id"] for r in responses}) == 3
    assert len(local_ports) == 1  # one connection for the three, the stream included (HTTP/1.1 keep-alive)


def test_stream_over_httpx_is_server_sent_events(model_server: ModelServer) -> None:
    model_server.reply("a b", usage=(1, 2))
    payload = {"model": "m", "messages": HI, "stream": True, "stream_options": {"include_usage": True}}
    with (
        httpx.Client(base_url=model_server.url) as client,
        client.stream("POST", "/chat/completions", json=payload) as response,
    ):
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert [c["choices"][0]["delta"] for c in chunks[:-1]] == [
        {"role": "assistant", "content": ""},
        {"content": "a "},
        {"content": "b"},
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


# --- a benchmark's load: paced, time-stamped tokens ----------------------------------------------


def test_rate_paces_a_streams_pieces_and_tokens_carry_when_they_were_written(model_server: ModelServer) -> None:
    model_server.reply(tokens=5, rate=50)
    model_server.reply("one two three", rate=50)
    payload = {"model": "m", "messages": HI, "stream": True}
    received: list[tuple[float, str]] = []
    with httpx.Client(base_url=model_server.url) as client:
        before = time.time()
        for _ in range(2):
            with client.stream("POST", "/chat/completions", json=payload) as response:
                for line in response.iter_lines():
                    if line.startswith("data: {"):
                        delta = json.loads(line.removeprefix("data: "))["choices"][0]["delta"]
                        received.append((time.time(), delta.get("content") or ""))
    tokens = [(at, text) for at, text in received[:8] if text]
    assert len(tokens) == 5
    written = [stamps(text)[0] for _, text in tokens]
    assert all(len(stamps(text)) == 1 and text.endswith(" ") for _, text in tokens)
    assert before <= model_server.requests[0].at <= written[0]
    assert all(wrote <= at for wrote, (at, _) in zip(written, tokens, strict=True))  # sent, then received
    assert written == sorted(written)
    assert written[-1] - model_server.requests[0].at >= 4 / 50  # the 5th token is due 4/50 s after the 1st
    assert "".join(text for _, text in received[8:]) == "one two three"
    assert model_server.requests[0].at <= model_server.requests[1].at


def test_a_client_that_resets_its_connection_is_not_an_error(
    model_server: ModelServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.create_connection(("127.0.0.1", model_server.port)) as conn:
        conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close: RST
    with httpx.Client(base_url=model_server.url) as client:  # the server goes on
        assert client.post("/chat/completions", json={"model": "m", "messages": HI}).status_code == 200
    assert "Traceback" not in capsys.readouterr().err


def test_tokens_in_a_plain_answer() -> None:
    with ModelServer() as server:
        server.reply(tokens=3)
        completion = httpx.post(f"{server.url}/chat/completions", json={"model": "m", "messages": HI}).json()
    content = completion["choices"][0]["message"]["content"]
    assert len(stamps(content)) == 3
    assert content == "".join(f"t{at:.6f} " for at in stamps(content))


# --- delays --------------------------------------------------------------------------------------


def test_delay_holds_the_answer(model_server: ModelServer) -> None:
    model_server.reply("slow", delay=0.3)

    started = time.monotonic()
    completion = with_client(model_server, lambda c: c.chat.completions.create(model="m", messages=HI))

    assert time.monotonic() - started >= 0.3
    assert completion.choices[0].message.content == "slow"


def test_delay_makes_the_client_time_out(model_server: ModelServer) -> None:
    model_server.reply("too slow", delay=2.0)

    async def timed_out(client: AsyncOpenAI) -> None:
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(model="m", messages=HI)

    started = time.monotonic()
    with_client(model_server, timed_out, timeout=0.2)
    assert time.monotonic() - started < 1.5


def test_delay_lets_a_request_be_cancelled(model_server: ModelServer) -> None:
    model_server.reply("never read", delay=2.0)

    async def cancelled(client: AsyncOpenAI) -> None:
        task = asyncio.create_task(client.chat.completions.create(model="m", messages=HI))
        await asyncio.to_thread(model_server.wait_for, 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    started = time.monotonic()
    with_client(model_server, cancelled)
    assert time.monotonic() - started < 1.5
    assert model_server.last.body["messages"] == HI


def test_stop_ends_a_delay_at_once() -> None:
    server = ModelServer().start()
    server.reply("never sent", delay=30)
    outcome: list[BaseException | httpx.Response] = []

    def call() -> None:
        try:
            outcome.append(httpx.post(f"{server.url}/chat/completions", json={"model": "m", "messages": HI}))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    server.wait_for(1)
    started = time.monotonic()
    server.stop()
    thread.join(timeout=5)
    assert time.monotonic() - started < 2
    assert not thread.is_alive()
    assert isinstance(outcome[0], httpx.RemoteProtocolError)
    server.stop()  # again: nothing happens
