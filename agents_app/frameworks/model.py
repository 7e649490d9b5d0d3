"""What every adapter that calls a model server shares: its config keys, its API key, its errors.

``api_key`` names one of the tenant's secrets (``{"secret": NAME}``); its value is read by the run
that calls the server, and never written to a config, a log line or an error.
"""

from __future__ import annotations

import os
import re
from typing import Any

from django.conf import settings

from agents_app import patterns
from agents_app.frameworks.base import ConfigError, ConfigProblems, Framework
from agents_app.outbound import Refused, refusal
from infra.io_threads import db
from sessions_app.core import SessionView

MODEL_KEYS = frozenset({"base_url", "model", "api_key", "temperature", "max_tokens"})
SECRET_NAME = re.compile(patterns.NAME)
#: The JSON Schema of the model keys (``validate_model_keys``): ``base_url`` and ``model`` required.
MODEL_KEYS_SCHEMA: dict[str, Any] = {
    "base_url": {
        "type": "string",
        "pattern": patterns.anchored(patterns.URL),
        "description": "The API root; it calls `<base_url>/chat/completions`. Refused when its host resolves to a"
        " non-public address, unless the deployment allows them.",
    },
    "model": {"type": "string", "pattern": patterns.anchored(patterns.NOT_BLANK)},
    "api_key": {
        "type": "object",
        "additionalProperties": False,
        "required": ["secret"],
        "properties": {"secret": {"type": "string", "pattern": patterns.anchored(patterns.NAME)}},
        "description": "One of the tenant's secrets, by name.",
    },
    "temperature": {"type": "number", "minimum": 0, "maximum": 2, "nullable": True},
    "max_tokens": {"type": "integer", "minimum": 1, "nullable": True},
}


#: A config's text for its model (``instructions``, ``system_prompt``): no null characters.
TEXT_SCHEMA: dict[str, Any] = {"type": "string", "pattern": patterns.anchored(patterns.NO_NUL)}


def model_config_schema(**properties: Any) -> dict[str, Any]:
    """The JSON Schema of a config of the model keys (``base_url`` and ``model`` required) and
    ``properties``, nothing else."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["base_url", "model"],
        "properties": {**MODEL_KEYS_SCHEMA, **properties},
    }


def check_text(config: dict[str, Any], key: str, problems: ConfigProblems) -> None:
    """``config[key]``, when given, is a string."""
    if key in config and not isinstance(config[key], str):
        problems.add(key, "must be a string")


class ModelError(Exception):
    """The model server failed, timed out or answered something that is not a model's answer.
    Its message says what happened and never carries the API key."""


#: How many of the session's latest entries an agent that sends history sends, by default and at most.
DEFAULT_HISTORY = 20
MAX_HISTORY = 500
HISTORY_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": MAX_HISTORY}


def validate_int(
    config: dict[str, Any], key: str, problems: ConfigProblems, *, default: int, low: int, high: int
) -> None:
    """Check the config's ``key``: an integer from ``low`` to ``high`` (``default`` when missing)."""
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.add(key, f"must be an integer from {low} to {high}")


def validate_model_keys(config: dict[str, Any], problems: ConfigProblems) -> None:
    """Check the model keys of ``config``: each bad one is added to ``problems``."""
    if "base_url" not in config:
        problems.add("base_url", "required: the API root, e.g. https://api.openai.com/v1")
    elif not isinstance(config["base_url"], str) or not patterns.matches(patterns.URL, config["base_url"]):
        problems.add("base_url", "must be an http or https URL with a host, e.g. https://api.openai.com/v1")
    if "model" not in config:
        problems.add("model", "required: the model name to send")
    elif not isinstance(config["model"], str) or not config["model"].strip():
        problems.add("model", "must be a model name: a string that is not blank")
    if "api_key" in config:
        with problems.checking():
            secret_name(config["api_key"])
    temperature = config.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 2
    ):
        problems.add("temperature", "must be a number from 0 to 2")
    max_tokens = config.get("max_tokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        problems.add("max_tokens", "must be a positive integer")


def secret_name(reference: Any) -> str:
    """The secret an ``api_key`` names: ``{"secret": NAME}``. A literal key is refused: a config
    is data anyone who can read the agent sees, never the place of a secret's value."""
    if isinstance(reference, dict) and set(reference) == {"secret"}:
        name = reference["secret"]
        if isinstance(name, str) and SECRET_NAME.fullmatch(name):
            return name
    raise ConfigError("api_key", 'must be {"secret": NAME}, naming one of the tenant\'s secrets (POST /secrets)')


class ModelFramework(Framework):
    """A framework whose agents name a model server with the model keys and send ``history``."""

    def secret_references(self, config: dict[str, Any]) -> dict[str, str]:
        return {"api_key": secret_name(config["api_key"])} if "api_key" in config else {}

    def check_runnable(self, config: dict[str, Any]) -> None:
        """Refuse a ``base_url`` on a loopback, private or link-local address (unless
        ``AK_AGENTS__ALLOW_PRIVATE_URLS``)."""
        if "base_url" in config:
            why = refusal(config["base_url"], allow_private=settings.AK_AGENTS["ALLOW_PRIVATE_URLS"])
            if why is not None:
                raise ConfigError("base_url", why)

    def window_for(self, config: dict[str, Any]) -> int:
        # Room for items (tool calls of other agents on the session) between the text messages.
        return 2 * config.get("history", DEFAULT_HISTORY)

    def history_for(self, config: dict[str, Any]) -> int:
        return 0 if self.window_for(config) == 0 else config.get("history", DEFAULT_HISTORY)


async def api_key(session: SessionView, config: dict[str, Any]) -> str | None:
    """The value of the secret the config's ``api_key`` names, decrypted for this run (None
    without one). Raises ``ModelError`` when the tenant has no such secret."""
    from agents_app.secrets import SecretMissing
    from agents_app.selectors import secret_value

    if "api_key" not in config:
        return None
    name = secret_name(config["api_key"])
    if session.key is None:
        raise ModelError(f"the secret {name!r} has no tenant to belong to outside a session's run")
    try:
        return await db(secret_value, tenant_slug=session.key.tenant, name=name)
    except SecretMissing as exc:
        raise ModelError(str(exc)) from None


def redacted(text: str, secret: str | None) -> str:
    """``text`` without ``secret`` in it (a server's error may quote the key it was sent)."""
    return text.replace(secret, "***") if secret else text


def sdk_headers(key: str | None, *, placeholder: str | None) -> dict[str, Any]:
    """``default_headers``/``extra_headers`` for an OpenAI SDK client calling a tenant's server:
    nothing of the server's environment. The SDK adds ``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID`` and
    the headers of ``OPENAI_CUSTOM_HEADERS`` (an ``Authorization`` among them would replace the
    tenant's key) to every request; here each is omitted, and ``Authorization`` is the tenant's
    key, or ``placeholder`` (omitted when None) without one."""
    import openai

    lines = os.environ.get("OPENAI_CUSTOM_HEADERS", "").splitlines()
    headers: dict[str, Any] = {line.split(":", 1)[0].strip(): openai.omit for line in lines if ":" in line}
    headers.update({"OpenAI-Organization": openai.omit, "OpenAI-Project": openai.omit})
    token = key or placeholder
    headers["Authorization"] = f"Bearer {token}" if token else openai.omit
    return headers


#: The key an SDK client is made with when the agent names none (the SDKs refuse to be made
#: without one): a placeholder that a server without keys ignores.
PLACEHOLDER_KEY = "unused"


def openai_client(config: dict[str, Any], *, tenant: str | None, key: str | None) -> Any:
    """An ``openai.AsyncOpenAI`` for the agent's ``base_url`` whose requests the tenant's guarded
    client sends (``agents_app.outbound``: its address checks and connection limits), with the
    headers of ``sdk_headers``, no retries of its own and the deployment's timeout: what every
    adapter over the OpenAI SDK (the Agents SDK, ADK, PydanticAI, smolagents) hands its library."""
    import httpx2
    from openai import AsyncOpenAI

    from agents_app.outbound import shared_client

    return AsyncOpenAI(
        base_url=config["base_url"],
        api_key=key or PLACEHOLDER_KEY,
        default_headers=sdk_headers(key, placeholder=PLACEHOLDER_KEY),
        http_client=shared_client(tenant, http=httpx2),
        max_retries=0,
        timeout=settings.AK_AGENTS["TIMEOUT"],
    )


def sdk_failure(exc: BaseException) -> str | None:
    """What went wrong with a call through OpenAI's SDK, in a line (it may quote the key: see
    ``redacted``), or None when it is not the model server's failure."""
    import openai

    refused = _in_chain(exc, Refused)
    if refused is not None:
        return f"the model server is refused: {refused}"
    if isinstance(exc, openai.APITimeoutError):
        return f"the model server did not answer within {settings.AK_AGENTS['TIMEOUT']:g} s"
    if isinstance(exc, openai.APIStatusError):
        detail = exc.body.get("message") if isinstance(exc.body, dict) else None
        return f"the model server answered {exc.status_code}: {str(detail or exc.message)[:300]}"
    if isinstance(exc, openai.APIConnectionError):
        return f"the model server could not be reached: {type(exc.__cause__ or exc).__name__}"
    return None


def _in_chain(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """``exc`` or the first of its causes and contexts that is a ``kind``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
