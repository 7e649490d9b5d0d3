"""``openai_chat``: an agent that talks to any server speaking OpenAI's Chat Completions API.

OpenAI, vLLM, Ollama, llama.cpp's server, LiteLLM... Config (see CONTRACT.md)::

    {"base_url": "http://127.0.0.1:11434/v1", "model": "llama3.2", "api_key": {"secret": "ollama"},
     "system_prompt": "You are terse.", "temperature": 0.2, "max_tokens": 256, "history": 20}

A run sends the system prompt, the session's latest ``history`` text messages and the new
message to ``<base_url>/chat/completions`` through ``agents_app.outbound`` (streamed when the run
is), and returns the assistant's content. A server that fails, times out or answers nonsense
raises ``ModelError``: the run fails (``agent_failed``) and commits nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
from django.conf import settings

from agents_app.frameworks.base import AgentLike, ConfigProblems, Reply, Usage, check_unknown_keys
from agents_app.frameworks.model import (
    DEFAULT_HISTORY,
    HISTORY_SCHEMA,
    MAX_HISTORY,
    MODEL_KEYS,
    TEXT_SCHEMA,
    ModelError,
    ModelFramework,
    api_key,
    check_text,
    model_config_schema,
    redacted,
    validate_int,
    validate_model_keys,
)
from agents_app.outbound import MAX_MODEL_ANSWER_BYTES, Refused, shared_client
from sessions_app.core import SessionView

KEYS = MODEL_KEYS | {"system_prompt", "history"}


class OpenAIChatFramework(ModelFramework):
    name = "openai_chat"

    def config_schema(self) -> dict[str, Any]:
        return model_config_schema(system_prompt=TEXT_SCHEMA, history=HISTORY_SCHEMA)

    def check_config(self, config: dict[str, Any], problems: ConfigProblems) -> None:
        check_unknown_keys(config, KEYS, self.name, problems)
        validate_model_keys(config, problems)
        check_text(config, "system_prompt", problems)
        validate_int(config, "history", problems, default=DEFAULT_HISTORY, low=0, high=MAX_HISTORY)

    async def run(self, agent: AgentLike, session: SessionView, message: str) -> Reply:
        config = agent.config
        key = await api_key(session, config)
        body: dict[str, Any] = {"model": config["model"], "messages": chat_messages(config, session, message)}
        for option in ("temperature", "max_tokens"):
            if config.get(option) is not None:
                body[option] = config[option]
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        url = config["base_url"].rstrip("/") + "/chat/completions"
        client = shared_client(session.key and session.key.tenant)  # the tenant's connections
        try:
            if session.streaming:
                body.update(stream=True, stream_options={"include_usage": True})
                return await _streamed(client, url, body, headers, session)
            return await _plain(client, url, body, headers)
        except Refused as exc:
            raise ModelError(f"the model server is refused: {exc}") from None
        except httpx.TimeoutException:
            raise ModelError(f"the model server did not answer within {settings.AK_AGENTS['TIMEOUT']:g} s") from None
        except httpx.HTTPError as exc:
            raise ModelError(redacted(f"the model server could not be reached: {type(exc).__name__}", key)) from None
        except ModelError as exc:
            raise ModelError(redacted(str(exc), key)) from None


def chat_messages(config: dict[str, Any], session: SessionView, message: str) -> list[dict[str, str]]:
    """The request's messages: the system prompt, the latest ``history`` text messages of the
    session, the new user message."""
    sent: list[dict[str, str]] = []
    if config.get("system_prompt"):
        sent.append({"role": "system", "content": config["system_prompt"]})
    history = config.get("history", DEFAULT_HISTORY)
    if history:
        sent.extend({"role": m.role, "content": m.content} for m in session.text_messages()[-history:])
    sent.append({"role": "user", "content": message})
    return sent


async def _plain(client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]) -> Reply:
    async with client.stream("POST", url, json=body, headers=headers) as response:
        raw = await _read_capped(response)
    _check_status(response.status_code, raw)
    answer = _json(raw)
    try:
        content = answer["choices"][0]["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ModelError("the model server's answer has no choices[0].message") from None
    if not isinstance(content, str):
        raise ModelError("the model server's answer is not text")
    return Reply(content, _usage(answer.get("usage")))


async def _streamed(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str], session: SessionView
) -> Reply:
    pieces: list[str] = []
    usage: Usage | None = None
    finished = False
    async with client.stream("POST", url, json=body, headers=headers) as response:
        if response.status_code >= 400:
            _check_status(response.status_code, await _read_capped(response))
        async for chunk in _sse_data(response):
            if chunk == b"[DONE]":
                finished = True
                break
            data = _json(chunk)
            usage = _usage(data.get("usage")) or usage
            for choice in data.get("choices") or ():
                text = (choice.get("delta") or {}).get("content")
                if isinstance(text, str) and text:
                    pieces.append(text)
                    session.emit_delta(text)
                if choice.get("finish_reason"):
                    finished = True
    if not finished:
        raise ModelError("the model server's stream ended before the answer did")
    return Reply("".join(pieces), usage)


async def _capped(response: httpx.Response) -> AsyncIterator[bytes]:
    """The answer's body as it comes; ``ModelError`` once it is over ``MAX_MODEL_ANSWER_BYTES``."""
    read = 0
    async for block in response.aiter_bytes():
        read += len(block)
        if read > MAX_MODEL_ANSWER_BYTES:
            raise ModelError(f"the model server's answer is over {MAX_MODEL_ANSWER_BYTES} bytes")
        yield block


async def _sse_data(response: httpx.Response) -> AsyncIterator[bytes]:
    """The ``data:`` payloads of a Server-Sent Events answer, capped in size."""
    buffer = b""
    async for block in _capped(response):
        buffer += block
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            line = line.rstrip(b"\r")
            if line.startswith(b"data:"):
                yield line[5:].strip()


async def _read_capped(response: httpx.Response) -> bytes:
    return b"".join([block async for block in _capped(response)])


def _check_status(status: int, raw: bytes) -> None:
    if status < 400:
        return
    detail = ""
    try:
        error = orjson.loads(raw).get("error")
        detail = error.get("message", "") if isinstance(error, dict) else str(error or "")
    except (orjson.JSONDecodeError, AttributeError):
        detail = raw[:200].decode(errors="replace")
    raise ModelError(f"the model server answered {status}" + (f": {detail[:300]}" if detail else ""))


def _json(raw: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ModelError("the model server's answer is not JSON") from None
    if not isinstance(data, dict):
        raise ModelError("the model server's answer is not a JSON object")
    return data


def _usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(prompt, completion, cached if isinstance(cached, int) and 0 <= cached <= prompt else 0)
