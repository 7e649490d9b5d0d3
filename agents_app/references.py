"""What an agent's config names besides itself, and who names what.

A config names the tenant's secrets and other agents of the tenant (handoffs), where its framework
says (``Framework.secret_references``, ``Framework.handoff_references``). This module checks those
names when an agent is saved, and finds the agents that name a secret or an agent before either is
deleted. A run checks again: what changed since is its error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from agents_app.compaction.config import COMPACTION, compaction_of
from agents_app.errors import AgentInvalid
from agents_app.frameworks import ConfigError, Framework, UnknownFramework, get_framework
from agents_app.frameworks.base import ConfigProblems
from agents_app.models import Agent, Secret
from sessions_app.models import Tenant


def agent_config_validated(*, tenant: Tenant, name: str, framework: str, config: Any) -> dict[str, Any]:
    """The config of the tenant's agent ``name`` of ``framework`` about to be saved, normalised:
    valid, its secrets and handoffs existing in the tenant, naming only tools and graphs the tenant
    may use, and runnable here. Raises ``AgentInvalid`` naming every bad field at once."""
    try:
        adapter = get_framework(framework)
    except UnknownFramework as exc:
        raise AgentInvalid({"framework": [str(exc)]}) from None
    try:
        config = adapter.validate_config(config)
    except ConfigError as exc:
        raise AgentInvalid(_fields(exc.problems)) from None
    problems = ConfigProblems()
    _check_secrets(tenant, adapter, config, problems)
    _check_handoffs(tenant, name, adapter, config, problems)
    _check_summariser(tenant, name, config, problems)
    with problems.checking():  # the tools and graphs it names: those the tenant may use
        adapter.check_tenant(config, tenant=tenant.slug)
    if not problems:  # what cannot run here, once what the config names exists
        with problems.checking():
            adapter.check_runnable(config)
    if problems:
        raise AgentInvalid(_fields(problems.found, runnable=True))
    return config


def _fields(problems: dict[str, str], *, runnable: bool = False) -> dict[str, list[str]]:
    """The API's field names: a config's path under ``config``; ``framework`` as ``check_runnable``
    names a framework that cannot run here."""
    fields: dict[str, list[str]] = {}
    for path, message in problems.items():
        field = "framework" if runnable and path == "framework" else f"config.{path}" if path else "config"
        fields.setdefault(field, []).append(message)
    return fields


def _check_secrets(tenant: Tenant, adapter: Framework, config: dict[str, Any], problems: ConfigProblems) -> None:
    named = adapter.secret_references(config)
    if not named:
        return
    existing = set(Secret.objects.filter(tenant=tenant, name__in=set(named.values())).values_list("name", flat=True))
    for path, secret in named.items():
        if secret not in existing:
            problems.add(path, f"the tenant has no secret named {secret!r} (POST /secrets stores it)")


def _check_handoffs(
    tenant: Tenant, name: str, adapter: Framework, config: dict[str, Any], problems: ConfigProblems
) -> None:
    named = adapter.handoff_references(config)
    if not named:
        return
    frameworks = dict(
        Agent.objects.filter(tenant=tenant, name__in=set(named.values())).values_list("name", "framework")
    )
    frameworks[name] = adapter.name  # itself, as it is about to be saved
    for path, target in named.items():
        framework = frameworks.get(target)
        if framework is None:
            problems.add(path, f"the tenant has no agent named {target!r}")
        elif not takes_handoffs(framework):
            problems.add(path, f"the agent {target!r} is of framework {framework}, which cannot take a handoff")


def _check_summariser(tenant: Tenant, name: str, config: dict[str, Any], problems: ConfigProblems) -> None:
    """The agent a valid ``compaction`` names: another of the tenant's agents."""
    compaction = compaction_of(config)
    if compaction is None:
        return
    path = f"{COMPACTION}.agent"
    if compaction.agent == name:
        problems.add(path, "must name another agent: an agent does not summarise its own sessions")
    elif not Agent.objects.filter(tenant=tenant, name=compaction.agent).exists():
        problems.add(path, f"the tenant has no agent named {compaction.agent!r}")


def agents_summarised_by(*, tenant: Tenant, name: str) -> list[str]:
    """The names of the tenant's other agents whose ``compaction`` names the agent ``name``, sorted."""
    agents = Agent.objects.filter(tenant=tenant, config__has_key=COMPACTION).order_by("name")
    return [
        agent.name
        for agent in agents.only("name", "config")
        if agent.name != name and (c := compaction_of(agent.config)) is not None and c.agent == name
    ]


def takes_handoffs(framework: str) -> bool:
    try:
        return get_framework(framework).takes_handoffs
    except UnknownFramework:
        return False


def _named(tenant: Tenant, references: str, *, excluding: str | None = None) -> Iterator[tuple[str, set[str]]]:
    """Each agent of the tenant with the names its config's ``references`` give (its secrets or its
    handoffs). An agent whose framework the deployment no longer has, or whose config its
    framework no longer reads, names nothing."""
    agents = Agent.objects.filter(tenant=tenant).order_by("name").values_list("name", "framework", "config")
    for name, framework, config in agents:
        if name == excluding:
            continue
        try:
            adapter = get_framework(framework)
            yield name, set(getattr(adapter, references)(config).values())
        except (UnknownFramework, ConfigError, AttributeError, KeyError, TypeError):
            continue


def agents_using_secret(*, tenant: Tenant, name: str) -> list[str]:
    """The names of the tenant's agents whose config names the secret ``name``, sorted."""
    return [agent for agent, secrets in _named(tenant, "secret_references") if name in secrets]


def agents_handing_off_to(*, tenant: Tenant, name: str) -> list[str]:
    """The names of the tenant's other agents whose handoffs name the agent ``name``, sorted."""
    return [agent for agent, targets in _named(tenant, "handoff_references", excluding=name) if name in targets]
