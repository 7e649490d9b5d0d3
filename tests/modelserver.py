"""A real OpenAI-compatible model server for tests: HTTP on a free loopback port, nothing mocked.

It speaks OpenAI's Chat Completions API (``POST /v1/chat/completions``, plain and streamed as
server-sent events) and ``GET /v1/models``, well enough for the official ``openai`` SDK, ``httpx``
and the frameworks built on them. Point a client's ``base_url`` at :attr:`ModelServer.url`::

    from openai import AsyncOpenAI
    from tests.modelserver import ModelServer, Reply

    with ModelServer() as server:                      # or the ``model_server`` fixture
        client = AsyncOpenAI(base_url=server.url, api_key="sk-test", max_retries=0)

        server.reply("Hello!")                         # the next answer, scripted
        server.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
        server.reply("Slow", delay=2.0)                # waits 2 s before answering
        server.reply("a b c", rate=20)                 # streamed: 20 pieces a second
        server.reply(tokens=40, rate=20)               # 40 tokens, each the time it was written
        # Unscripted, it answers "reply to: <the last user message>"; or answer from the request:
        server.reply_with(lambda body: Reply("done") if body["messages"][-1]["role"] == "tool" else None)

        server.fail(500)                               # the next request gets HTTP 500
        server.fail(429, "slow down", headers={"retry-after": "0"})
        server.fail_mid_stream(after_chunks=2)         # the next stream breaks off after 2 chunks

        server.requests                                # what it was sent: [Recorded(path, headers, body, method, at)]
        server.last.body["messages"]                   # the latest request
        server.wait_for(2)                             # block until 2 requests have arrived

An answer is chosen for each chat request in this order: a pending :meth:`~ModelServer.fail`;
else the next reply queued with :meth:`~ModelServer.reply`; else the function given to
:meth:`~ModelServer.reply_with` (when it returns ``None``, the default); else the default reply.
Requests without a ``model`` or a list of ``messages``, or whose body is not a JSON object, are
answered 400 as OpenAI would, without using the script.

Streams are sent with chunked transfer-encoding on a kept-alive HTTP/1.1 connection, so a stream
that breaks off (:meth:`~ModelServer.fail_mid_stream`) is seen by the client as an incomplete body
(``httpx.RemoteProtocolError``; the SDK raises ``openai.APIConnectionError``), not as a short one.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ModelServer", "Recorded", "Reply", "stamps"]


@dataclass
class Reply:
    """One answer of the model.

    ``tool_calls`` items are ``{"name": ..., "arguments": dict | str}`` (optionally ``"id"``): the
    server gives them ids ``call_<n>`` and JSON-encodes dict arguments (a string is sent as is, so a
    test can send malformed arguments). ``usage`` is ``(prompt_tokens, completion_tokens)``, or
    ``None`` for an answer without usage. ``delay`` is seconds to wait before answering.

    ``rate``: a streamed answer's pieces of content go out at that many a second (0: at once),
    on a schedule from the first, so a slow write does not delay the next ones. ``tokens``: the
    content is that many tokens ``t<time.time() as the token is written> `` (see :func:`stamps`):
    a client measures how late each reached it (a benchmark's load; ``content`` is then ignored).
    """

    content: str = ""
    tool_calls: list[dict[str, Any]] | None = None
    usage: tuple[int, int] | None = (10, 5)
    delay: float = 0.0
    rate: float = 0.0
    tokens: int = 0


def stamp() -> str:
    """A token of a ``Reply(tokens=...)``: ``t<the time now, time.time()> ``."""
    return f"t{time.time():.6f} "


def stamps(text: str) -> list[float]:
    """The times written in the tokens of ``text`` (a ``Reply(tokens=...)``'s content or a part of it)."""
    return [float(found) for found in re.findall(r"t(\d+\.\d{6}) ", text)]


@dataclass(frozen=True)
class Recorded:
    """A request the server received: header names are lower-case; ``body`` is ``{}`` for a GET;
    ``at``: when it had arrived whole (``time.time()``)."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    method: str = "POST"
    at: float = 0.0


#: What ``reply_with`` takes: the request's JSON body to a reply (a string is the reply's content),
#: or ``None`` for the default reply.
ReplyFunction = Callable[[dict[str, Any]], Reply | str | None]


@dataclass
class _Failure:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int


@dataclass
class _Plan:
    reply: Reply | None = None
    failure: _Failure | None = None
    cut_after: int | None = None


_ERROR_KINDS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout", None),
    409: ("conflict", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """OpenAI's error JSON for an HTTP status: ``{"error": {"message", "type", "code", "param"}}``."""
    kind, code = _ERROR_KINDS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {
        "error": {
            "message": message or f"The model server failed on purpose with HTTP {status}.",
            "type": kind,
            "param": None,
            "code": code,
        }
    }


def _words(text: str) -> list[str]:
    """``"Hello big world"`` -> ``["Hello ", "big ", "world"]``: pieces that concatenate to ``text``."""
    return re.findall(r"\s+|\S+\s*", text)


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _text_of(content: Any) -> str:
    """A message's content as text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def default_reply(body: dict[str, Any]) -> Reply:
    """``"reply to: <content of the last user message>"``."""
    users = [m for m in body.get("messages", []) if isinstance(m, dict) and m.get("role") == "user"]
    return Reply(f"reply to: {_text_of(users[-1].get('content')) if users else ''}")


class ModelServer:
    """An OpenAI-compatible chat model on ``127.0.0.1:<free port>``, answering from a script."""

    def __init__(self, models: Iterable[str] = ("test-model",)) -> None:
        """``models``: what ``GET /v1/models`` lists, with every model later asked for in a request."""
        self._models = list(dict.fromkeys(models))
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._replies: deque[Reply] = deque()
        self._reply_fn: ReplyFunction | None = None
        self._failures: deque[_Failure] = deque()
        self._cuts: deque[list[int]] = deque()  # [after_chunks, times]
        self._requests: list[Recorded] = []
        self._connections: set[socket.socket] = set()
        self._counter = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- life ----------------------------------------------------------------------------------

    def start(self) -> ModelServer:
        """Bind ``127.0.0.1`` on a free port and serve in a daemon thread; returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("the model server is already started")
        self._stopping.clear()
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.model_server = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="model-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: replies still waiting out a ``delay`` end at once, unanswered, and open
        connections are closed. Calling it again does nothing."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port it listens on (once started)."""
        if self._httpd is None:
            raise RuntimeError("the model server is not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """The ``base_url`` for clients: ``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # --- the script ----------------------------------------------------------------------------

    def reply(
        self,
        content: str = "",
        *,
        tool_calls: list[dict[str, Any]] | None = None,
        usage: tuple[int, int] | None = (10, 5),
        delay: float = 0.0,
        rate: float = 0.0,
        tokens: int = 0,
    ) -> None:
        """Queue one answer (see :class:`Reply`); queued answers are given in order, one a request."""
        self.queue(Reply(content, tool_calls=tool_calls, usage=usage, delay=delay, rate=rate, tokens=tokens))

    def queue(self, *replies: Reply) -> None:
        """Queue ready-made :class:`Reply` objects."""
        with self._lock:
            self._replies.extend(replies)

    def reply_with(self, fn: ReplyFunction | None) -> None:
        """Answer from ``fn(request_body)`` when no reply is queued (``None`` from it, or as ``fn``:
        the default reply). ``fn`` runs in the server's thread, outside its lock."""
        with self._lock:
            self._reply_fn = fn

    def fail(
        self,
        status: int = 500,
        body: dict[str, Any] | str | None = None,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` chat requests with HTTP ``status`` and OpenAI's error JSON.

        ``body``: the error's message (a string), or the whole JSON body (a dict); by default a
        message naming the status. ``headers`` are added to the answer (e.g. ``retry-after``).
        """
        payload = body if isinstance(body, dict) else error_body(status, body)
        with self._lock:
            self._failures.append(_Failure(status, payload, dict(headers or {}), times))

    def fail_mid_stream(self, after_chunks: int = 2, *, times: int = 1) -> None:
        """Break off the next ``times`` streamed answers: send ``after_chunks`` chunks (the first is
        the one with the role), then close the connection without ending the body or ``[DONE]``."""
        with self._lock:
            self._cuts.append([after_chunks, times])

    def reset(self) -> None:
        """Forget the script: queued replies, the reply function and pending failures."""
        with self._lock:
            self._replies.clear()
            self._reply_fn = None
            self._failures.clear()
            self._cuts.clear()

    # --- the record ----------------------------------------------------------------------------

    @property
    def requests(self) -> list[Recorded]:
        """Every request received, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def last(self) -> Recorded:
        """The latest request received; ``LookupError`` when there is none."""
        with self._lock:
            if not self._requests:
                raise LookupError("the model server has received no request")
            return self._requests[-1]

    def clear(self) -> None:
        """Forget the requests received."""
        with self._lock:
            self._requests.clear()

    def wait_for(self, count: int = 1, *, timeout: float = 5.0) -> list[Recorded]:
        """Block until at least ``count`` requests have been received; ``TimeoutError`` after ``timeout``."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._requests) >= count, timeout=timeout):
                raise TimeoutError(f"{len(self._requests)} requests received, not {count}, in {timeout}s")
            return list(self._requests)

    # --- used by the handler -------------------------------------------------------------------

    def _record(self, recorded: Recorded) -> None:
        with self._changed:
            self._requests.append(recorded)
            model = recorded.body.get("model")
            if isinstance(model, str) and model not in self._models:
                self._models.append(model)
            self._changed.notify_all()

    def _next(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    def _plan(self, stream: bool) -> tuple[_Plan, ReplyFunction | None]:
        with self._lock:
            if self._failures:
                failure = self._failures[0]
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.popleft()
                return _Plan(failure=failure), None
            plan = _Plan()
            if stream and self._cuts:
                cut = self._cuts[0]
                plan.cut_after = cut[0]
                cut[1] -= 1
                if cut[1] <= 0:
                    self._cuts.popleft()
            if self._replies:
                plan.reply = self._replies.popleft()
            return plan, self._reply_fn

    def _models_list(self) -> dict[str, Any]:
        with self._lock:
            names = list(self._models)
        return {"object": "list", "data": [self._model(name) for name in names]}

    def _has_model(self, name: str) -> bool:
        with self._lock:
            return name in self._models

    @staticmethod
    def _model(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 0, "owned_by": "modelserver"}

    def _track(self, conn: socket.socket, *, opened: bool) -> None:
        with self._lock:
            if opened:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # hundreds of runs connect at once under a benchmark's load
    model_server: ModelServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away (a pool closing its idle connection) is not the server's error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host's name up (getfqdn), which may be slow: skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK hold every answer ~40 ms.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.model_server._track(self.connection, opened=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.model_server._track(self.connection, opened=False)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    @property
    def ms(self) -> ModelServer:
        return self.server.model_server

    # --- requests ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        self.ms._record(Recorded(path, self._headers(), {}, "GET", time.time()))
        if path == "/v1/models":
            self._json(200, self.ms._models_list())
        elif path.startswith("/v1/models/") and self.ms._has_model(path.removeprefix("/v1/models/")):
            self._json(200, ModelServer._model(path.removeprefix("/v1/models/")))
        else:
            self._json(404, error_body(404, f"No route or model for GET {path}"))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        raw = self._read_body()
        at = time.time()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.ms._record(Recorded(path, self._headers(), body if isinstance(body, dict) else {}, "POST", at))
        if path != "/v1/chat/completions":
            self._json(404, error_body(404, f"No route for POST {path}"))
            return
        if not isinstance(body, dict):
            self._json(400, error_body(400, "The body must be a JSON object."))
            return
        if not isinstance(body.get("model"), str) or not isinstance(body.get("messages"), list):
            self._json(400, error_body(400, "'model' (a string) and 'messages' (a list) are required."))
            return
        self._chat(body)

    def _chat(self, body: dict[str, Any]) -> None:
        stream = bool(body.get("stream"))
        plan, fn = self.ms._plan(stream)
        if plan.failure is not None:
            self._json(plan.failure.status, plan.failure.body, plan.failure.headers)
            return
        reply = plan.reply
        if reply is None and fn is not None:
            answer = fn(body)
            reply = Reply(answer) if isinstance(answer, str) else answer
        if reply is None:
            reply = default_reply(body)
        if reply.delay > 0 and self.ms._stopping.wait(reply.delay):
            self.close_connection = True  # the server stops: no answer
            return
        model = body["model"]
        calls = [
            {
                "id": call.get("id") or f"call_{self.ms._next()}",
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": (
                        call.get("arguments", "")
                        if isinstance(call.get("arguments", ""), str)
                        else json.dumps(call["arguments"])
                    ),
                },
            }
            for call in reply.tool_calls or []
        ]
        finish = "tool_calls" if calls else "stop"
        usage = (
            None
            if reply.usage is None
            else {
                "prompt_tokens": reply.usage[0],
                "completion_tokens": reply.usage[1],
                "total_tokens": reply.usage[0] + reply.usage[1],
            }
        )
        head = {"id": f"chatcmpl-{self.ms._next()}", "created": int(time.time()), "model": model}
        if stream:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            self._stream(head, reply, calls, finish, usage if include_usage else None, include_usage, plan)
            return
        content = "".join(stamp() for _ in range(reply.tokens)) if reply.tokens else reply.content
        message: dict[str, Any] = {"role": "assistant", "content": content or (None if calls else "")}
        if calls:
            message["tool_calls"] = calls
        completion: dict[str, Any] = {
            **head,
            "object": "chat.completion",
            "system_fingerprint": None,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        }
        if usage is not None:
            completion["usage"] = usage
        self._json(200, completion)

    def _stream(
        self,
        head: dict[str, Any],
        reply: Reply,
        calls: list[dict[str, Any]],
        finish: str,
        usage: dict[str, int] | None,
        include_usage: bool,
        plan: _Plan,
    ) -> None:
        base = {**head, "object": "chat.completion.chunk", "system_fingerprint": None}

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            out = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
            if include_usage:
                out["usage"] = None
            return out

        # A piece of content (None: a stamp) is made into its chunk as it is sent, at its time.
        chunks: list[dict[str, Any] | str | None] = [chunk({"role": "assistant", "content": ""})]
        chunks += [None] * reply.tokens if reply.tokens else _words(reply.content)
        for index, call in enumerate(calls):
            first = {**call, "index": index, "function": {"name": call["function"]["name"], "arguments": ""}}
            chunks.append(chunk({"tool_calls": [first]}))
            for piece in _pieces(call["function"]["arguments"], 8):
                chunks.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
        chunks.append(chunk({}, finish))
        if usage is not None:
            chunks.append({**base, "choices": [], "usage": usage})

        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("x-request-id", f"req_{self.ms._next()}")
            self.end_headers()
            started, pieces = time.monotonic(), 0
            for sent, payload in enumerate(chunks):
                if plan.cut_after is not None and sent >= plan.cut_after:
                    self._break_off()
                    return
                if not isinstance(payload, dict):
                    if reply.rate > 0 and self.ms._stopping.wait(started + pieces / reply.rate - time.monotonic()):
                        self._break_off()  # the server stops
                        return
                    pieces += 1
                    payload = chunk({"content": stamp() if payload is None else payload})
                self._write_chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")
            if plan.cut_after is not None:
                self._break_off()
                return
            self._write_chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _break_off(self) -> None:
        """Close the connection in the middle of the body: no last chunk, no ``[DONE]``."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # --- plumbing ------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", f"req_{self.ms._next()}")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True
