"""The agents one ``openai_agents`` run may use: the entry agent and those its handoffs reach,
each built as the SDK's ``Agent`` from its config (its model over the platform's guarded client,
its tools from the deployment's registry)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents_app.frameworks.base import AgentLike
from agents_app.frameworks.model import ModelError, api_key, openai_client
from agents_app.frameworks.openai_agents_session import HandoffTool
from agents_app.frameworks.tools import UnknownTool, tools_named
from infra.io_threads import db
from sessions_app.core import SessionView

FRAMEWORK = "openai_agents"
#: Most agents one run may reach: its own and those its handoffs lead to.
MAX_AGENTS = 10


@dataclass
class Team:
    """The SDK agents one run may use: the entry agent and those its handoffs reach."""

    #: SDK ``Agent`` by name (the tenant's agent names).
    agents: dict[str, Any]
    #: Every handoff tool of those agents, by the tool's name.
    handoff_tools: dict[str, HandoffTool] = field(default_factory=dict)
    #: The API keys the run sends (to keep them out of its errors).
    keys: list[str] = field(default_factory=list)

    @classmethod
    async def load(cls, agent: AgentLike, session: SessionView, *, tenant: str) -> Team:
        """Load the agents of ``tenant`` reachable from ``agent`` and build each (its model, key,
        tools). Raises ``ModelError`` for a handoff that names no ``openai_agents`` agent, or an
        unknown tool."""
        configs = {agent.name: agent.config}
        if agent.config.get("handoffs"):
            configs = await db(_reachable, tenant_slug=tenant, entry=agent.name, config=agent.config)
        team = cls(agents={})
        secrets: dict[str, str | None] = {}
        for name, config in configs.items():
            name_of_secret = str(config.get("api_key"))
            if name_of_secret not in secrets:
                secrets[name_of_secret] = await api_key(session, config)
            key = secrets[name_of_secret]
            team.agents[name] = _sdk_agent(name, config, key, tenant=tenant)
            if key:
                team.keys.append(key)
        team._wire(configs)
        return team

    def _wire(self, configs: dict[str, dict[str, Any]]) -> None:
        """Give each agent its handoffs (after all are built: handoffs may go round, A→B→A)."""
        from agents import handoff

        for name, config in configs.items():
            for target in config.get("handoffs", []):
                made = handoff(self.agents[target])
                known = self.handoff_tools.get(made.tool_name)
                if known is not None and known.agent != target:
                    raise ModelError(f"the handoffs to {known.agent!r} and {target!r} have one tool name")
                self.handoff_tools[made.tool_name] = HandoffTool(target, made.get_transfer_message(self.agents[target]))
                self.agents[name].handoffs.append(made)


def _reachable(*, tenant_slug: str, entry: str, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The configs of ``entry`` and of every agent its handoffs reach, by name (a query per
    step). Raises ``ModelError`` for a name that is not the tenant's ``openai_agents`` agent,
    or when more than ``MAX_AGENTS`` are reachable."""
    from agents_app.selectors import agent_configs

    configs = {entry: config}
    new = [entry]
    while wanted := sorted({t for name in new for t in configs[name].get("handoffs", [])} - configs.keys()):
        found = agent_configs(tenant_slug=tenant_slug, names=wanted)
        for name in wanted:
            if name not in found:
                raise ModelError(f"the handoff {name!r} names no agent of the tenant (one of its openai_agents agents)")
            framework, target = found[name]
            if framework != FRAMEWORK:
                raise ModelError(f"the handoff {name!r} names an agent of framework {framework}, not openai_agents")
            configs[name] = target
        if len(configs) > MAX_AGENTS:
            raise ModelError(f"more than {MAX_AGENTS} agents are reachable through handoffs")
        new = wanted
    return configs


def _sdk_agent(name: str, config: dict[str, Any], key: str | None, *, tenant: str | None) -> Any:
    """The SDK ``Agent`` for an agent's config of ``tenant``'s: its model over the loop's guarded
    client of ``tenant``, sending nothing of the server's environment (``sdk_headers``), and its
    tools (only those the tenant may use). Without a key the SDK, which wants one, gets a
    placeholder that a server without keys ignores."""
    from agents import Agent, ModelSettings, OpenAIChatCompletionsModel

    client = openai_client(config, tenant=tenant, key=key)
    try:
        tools = tools_named(config.get("tools", []), tenant=tenant)
    except UnknownTool as exc:
        raise ModelError(str(exc)) from None
    return Agent(
        name=name,
        instructions=config.get("instructions") or None,
        model=OpenAIChatCompletionsModel(model=config["model"], openai_client=client),
        model_settings=ModelSettings(
            temperature=config.get("temperature"), max_tokens=config.get("max_tokens"), include_usage=True
        ),
        tools=tools,
        handoffs=[],
    )
