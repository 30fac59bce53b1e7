"""A team: the registered agents and workflows of one orchestrator, checked as they are added."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestration.definitions import Agent, Workflow
from orchestration.pricing import PriceTable
from storage.errors import ConfigurationError, UnknownAgent, UnknownWorkflow
from workers.providers.registry import check_model_name


@dataclass
class Team:
    name: str
    agents: dict[str, Agent] = field(default_factory=dict)
    workflows: dict[str, Workflow] = field(default_factory=dict)
    prices: PriceTable = field(default_factory=PriceTable.default)

    def add_agent(self, agent: Agent) -> None:
        """Register ``agent``: its model must be priced, and its fallback registered first, so
        that a chain of fallbacks always ends (no cycle can be made one agent at a time)."""
        if agent.id in self.agents and self.agents[agent.id] != agent:
            raise ConfigurationError(
                f"agent {agent.id!r} is already registered with another definition; a "
                "registered agent cannot change: give the new definition an id of its own"
            )
        self.prices.price_of(agent.model)  # an unpriced model is refused now, not when called
        check_model_name(agent.model)
        if agent.fallback is not None and agent.fallback not in self.agents:
            raise UnknownAgent(
                f"agent {agent.id!r} falls back to {agent.fallback!r}, which is not registered; "
                "register the fallback agent first"
            )
        _fallback_chain({**self.agents, agent.id: agent}, agent.id)
        self.agents[agent.id] = agent

    def add_workflow(self, workflow: Workflow) -> None:
        """Register ``workflow``: every agent its nodes name (join agents too) must be
        registered first."""
        workflow.graph.check_agents(self.agents, workflow.name)
        for agent_id in workflow.graph.agents():
            self.fallback_chain(agent_id)
        self.workflows[workflow.name] = workflow

    def agent(self, agent_id: str) -> Agent:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise UnknownAgent(
                f"agent {agent_id!r} is not registered in team {self.name!r} "
                f"(registered: {', '.join(sorted(self.agents)) or 'none'})"
            ) from None

    def workflow(self, name: str) -> Workflow:
        try:
            return self.workflows[name]
        except KeyError:
            raise UnknownWorkflow(
                f"workflow {name!r} is not registered in team {self.name!r} "
                f"(registered: {', '.join(sorted(self.workflows)) or 'none'})"
            ) from None

    def fallback_chain(self, agent_id: str) -> list[str]:
        """``agent_id`` and its fallbacks, in order. Unknown agents and cycles are errors."""
        self.agent(agent_id)
        return _fallback_chain(self.agents, agent_id)


def _fallback_chain(agents: Mapping[str, Agent], agent_id: str) -> list[str]:
    chain = [agent_id]
    current = agents[agent_id]
    while current.fallback is not None:
        if current.fallback in chain:
            raise ConfigurationError(
                f"fallback cycle: {' -> '.join([*chain, current.fallback])}; "
                "a fallback chain must end"
            )
        if current.fallback not in agents:
            raise UnknownAgent(
                f"agent {current.id!r} falls back to {current.fallback!r}, which is not "
                "registered; register the fallback agent first"
            )
        chain.append(current.fallback)
        current = agents[current.fallback]
    return chain
