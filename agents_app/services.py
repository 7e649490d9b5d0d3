"""Agents and secrets: validated writes. (A run is submitted by ``agents_app.runs.submit``.)"""

from __future__ import annotations

import re
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from agents_app.errors import AgentInvalid, BuiltinAgent, IdempotencyConflict, InUse
from agents_app.limits import agents_limit_check, secrets_limit_check
from agents_app.models import Agent, Secret
from agents_app.references import (
    agent_config_validated,
    agents_handing_off_to,
    agents_summarised_by,
    agents_using_secret,
    takes_handoffs,
)
from agents_app.runs.cancel import run_cancel, run_retry
from agents_app.secrets import SECRET_NAME_PATTERN, secret_encrypt, secret_reencrypt, secret_value_check
from sessions_app.models import Tenant

BUILTIN_AGENTS: dict[str, dict[str, Any]] = {"echo": {"framework": "echo", "config": {}}}


class AgentExists(ValueError):
    pass


def agent_ensure_builtins(*, tenant: Tenant) -> None:
    for name, spec in BUILTIN_AGENTS.items():
        Agent.objects.get_or_create(tenant=tenant, name=name, defaults=spec)


def tenant_given_builtins(sender: type[Tenant], instance: Tenant, created: bool, **kwargs: Any) -> None:
    """``post_save`` of a Tenant: a new tenant gets its built-in agents."""
    if created:
        agent_ensure_builtins(tenant=instance)


def agent_create(*, tenant: Tenant, name: str, framework: str, config: dict[str, Any]) -> Agent:
    """Create an agent; raises ``AgentInvalid`` (naming every bad field: ``agent_config_validated``),
    ``AgentExists`` or ``LimitReached`` (the tenant's limit of agents)."""
    config = agent_config_validated(tenant=tenant, name=name, framework=framework, config=config)
    agents_limit_check(tenant=tenant, builtins=BUILTIN_AGENTS)
    try:
        with transaction.atomic():
            return Agent.objects.create(tenant=tenant, name=name, framework=framework, config=config)
    except IntegrityError:
        raise AgentExists(f"an agent named {name!r} exists") from None


def agent_update(*, agent: Agent, framework: str | None = None, config: dict[str, Any] | None = None) -> Agent:
    """Give ``agent`` (a fresh row: ``agent_find``) a new framework and/or a new config (the whole
    config: what it does not name is gone), checked whole as ``agent_create`` checks it; the next
    run of the agent uses them. Raises ``AgentInvalid``, ``BuiltinAgent`` (a valid change of a
    built-in agent), or ``InUse`` when a new framework cannot take the handoffs other agents make
    to it."""
    if framework is None and config is None:
        return agent
    framework = agent.framework if framework is None else framework
    config = agent.config if config is None else config
    config = agent_config_validated(tenant=agent.tenant, name=agent.name, framework=framework, config=config)
    if agent.name in BUILTIN_AGENTS:
        raise BuiltinAgent(f"{agent.name!r} is built in: every tenant has it as it is")
    if framework != agent.framework and not takes_handoffs(framework):
        handing_off = agents_handing_off_to(tenant=agent.tenant, name=agent.name)
        if handing_off:
            raise InUse(f"agents hand off to {agent.name!r}; a {framework} agent cannot take a handoff", handing_off)
    agent.framework, agent.config = framework, config
    agent.save(update_fields=["framework", "config", "updated_at"])
    return agent


def agent_delete(*, agent: Agent) -> None:
    """Delete ``agent``: gone from the tenant's agents, its name free again; its runs and
    sessions stay (``Agent.deleted_at``). Raises ``BuiltinAgent``, or ``InUse`` naming the
    tenant's agents that hand off to it, or whose compaction it writes the summaries of."""
    if agent.name in BUILTIN_AGENTS:
        raise BuiltinAgent(f"{agent.name!r} is built in: every tenant has it")
    handing_off = agents_handing_off_to(tenant=agent.tenant, name=agent.name)
    if handing_off:
        raise InUse(f"agents hand off to {agent.name!r}: change their handoffs first", handing_off)
    summarised = agents_summarised_by(tenant=agent.tenant, name=agent.name)
    if summarised:
        raise InUse(f"agents' sessions are compacted by {agent.name!r}: change their compaction first", summarised)
    agent.deleted_at = timezone.now()
    agent.save(update_fields=["deleted_at", "updated_at"])


def agent_get(*, tenant: Tenant, name: str, rows: QuerySet[Agent] | None = None) -> Agent:
    """The tenant's agent, or ``Http404``. Built-in agents are made on first use. ``rows``: the
    agents to look in, with what a caller annotates them with (default: every live agent)."""
    rows = Agent.objects.all() if rows is None else rows
    try:
        return rows.get(tenant=tenant, name=name)
    except Agent.DoesNotExist:
        if name not in BUILTIN_AGENTS:
            raise Http404("unknown agent") from None
    agent_ensure_builtins(tenant=tenant)
    return rows.get(tenant=tenant, name=name)


@sensitive_variables("value")
def secret_set(*, tenant: Tenant, name: str, value: str) -> Secret:
    """Create the tenant's secret ``name``, or rotate it (a new value, encrypted anew) if it
    exists; returns the row. ``ValueError`` for a name that is not letters, digits, ``_.-`` (up
    to 63), or a value that is not a non-empty string of at most 8 KB (that message does not
    quote it), ``LimitReached`` for a new name over the tenant's limit of secrets."""
    if not isinstance(name, str) or not re.fullmatch(SECRET_NAME_PATTERN, name):
        raise ValueError(f"Not a secret name: {name!r}; use letters, digits, '_', '.', '-' (up to 63).")
    secrets_limit_check(tenant=tenant, name=name)
    ciphertext = secret_encrypt(secret_value_check(value))
    secret, _ = Secret.objects.update_or_create(tenant=tenant, name=name, defaults={"ciphertext": ciphertext})
    return secret


def secret_delete(*, tenant: Tenant, name: str) -> bool:
    """Delete the tenant's secret ``name``; False if it had none of that name. Raises ``InUse``
    naming the tenant's agents whose configs name it."""
    if not Secret.objects.filter(tenant=tenant, name=name).exists():
        return False
    users = agents_using_secret(tenant=tenant, name=name)
    if users:
        raise InUse(f"agents use the secret {name!r}: change their configs first", users)
    deleted, _ = Secret.objects.filter(tenant=tenant, name=name).delete()
    return deleted > 0


def secret_reencrypt_all() -> int:
    """Encrypt every secret anew under the current ``AK_SECRETS_KEY`` (after a key rotation, so
    that the old key may leave ``AK_SECRETS_OLD_KEYS``); returns how many rows were rewritten.
    ``updated_at`` is left alone: the values did not change."""
    count = 0
    for pk, ciphertext in Secret.objects.values_list("pk", "ciphertext").iterator():
        count += Secret.objects.filter(pk=pk, ciphertext=ciphertext).update(ciphertext=secret_reencrypt(ciphertext))
    return count


__all__ = [
    "AgentExists",
    "AgentInvalid",
    "BuiltinAgent",
    "IdempotencyConflict",
    "InUse",
    "agent_create",
    "agent_delete",
    "agent_ensure_builtins",
    "agent_get",
    "agent_update",
    "run_cancel",
    "run_retry",
    "secret_delete",
    "secret_reencrypt_all",
    "secret_set",
]
