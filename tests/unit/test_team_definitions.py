import pytest

from orchestration import Agent, Workflow
from orchestration.team import Team
from storage.errors import ConfigurationError, UnknownAgent, UnknownWorkflow


def _agent(agent_id: str, **kw: object) -> Agent:
    return Agent(id=agent_id, model="offline:echo", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "Researcher", "has space", "a.b", "x" * 64])
def test_an_agent_id_that_cannot_name_a_queue_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="agent id"):
        _agent(bad)


def test_an_agent_has_the_documented_defaults_and_its_own_queue() -> None:
    agent = _agent("writer")
    assert (agent.max_tokens, agent.max_retries, agent.timeout_s, agent.fallback) == (
        1024,
        3,
        60,
        None,
    )
    assert agent.queue == "agent.writer"


def test_a_workflow_naming_an_unregistered_agent_is_refused() -> None:
    team = Team("t")
    team.add_agent(_agent("writer"))
    with pytest.raises(UnknownAgent, match=r"names agent\(s\) \['ghost'\]"):
        team.add_workflow(Workflow.sequence("w", ["writer", "ghost"]))
    assert "w" not in team.workflows


def test_a_model_without_a_price_is_refused_at_registration() -> None:
    with pytest.raises(ConfigurationError, match="no price for model"):
        Team("t").add_agent(Agent(id="a", model="mystery-model"))


def test_a_fallback_cycle_is_refused_when_a_workflow_uses_it() -> None:
    team = Team("t")
    team.add_agent(_agent("a", fallback="b"))
    team.add_agent(_agent("b", fallback="a"))
    with pytest.raises(ConfigurationError, match="fallback cycle: a -> b -> a"):
        team.add_workflow(Workflow.sequence("w", ["a"]))


def test_a_fallback_to_an_unregistered_agent_is_refused() -> None:
    team = Team("t")
    team.add_agent(_agent("a", fallback="b"))
    with pytest.raises(UnknownAgent, match="falls back to 'b'"):
        team.add_workflow(Workflow.sequence("w", ["a"]))


def test_the_fallback_chain_lists_the_agents_in_order() -> None:
    team = Team("t")
    for agent in (_agent("a", fallback="b"), _agent("b", fallback="c"), _agent("c")):
        team.add_agent(agent)
    assert team.fallback_chain("a") == ["a", "b", "c"]


def test_looking_up_an_unknown_workflow_lists_the_registered_ones() -> None:
    team = Team("t")
    team.add_agent(_agent("a"))
    team.add_workflow(Workflow.sequence("known", ["a"]))
    with pytest.raises(UnknownWorkflow, match=r"'nope' is not registered .*registered: known"):
        team.workflow("nope")


def test_a_workflow_needs_at_least_one_step_and_a_positive_budget() -> None:
    with pytest.raises(ValueError):
        Workflow.sequence("w", [])
    with pytest.raises(ValueError):
        Workflow.sequence("w", ["a"], budget_usd=0)
