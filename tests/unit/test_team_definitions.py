import math

import pytest
from pydantic import ValidationError

from orchestration import Agent, Workflow
from orchestration.pricing import MAX_CAP_USD, usd_to_micro
from orchestration.team import Team
from storage.errors import ConfigurationError, InvalidDefinition, UnknownAgent, UnknownWorkflow


def _agent(agent_id: str, **kw: object) -> Agent:
    return Agent(id=agent_id, model="offline:echo", **kw)  # type: ignore[arg-type]


# -- definitions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "Researcher", "has space", "a.b", "x" * 64])
def test_an_agent_id_that_cannot_name_a_queue_is_refused(bad: str) -> None:
    with pytest.raises(InvalidDefinition, match="id must be 1-63 lower-case letters"):
        _agent(bad)


def test_a_bad_agent_is_refused_in_plain_words_naming_it_the_field_and_what_it_got() -> None:
    with pytest.raises(InvalidDefinition) as refused:
        Agent(id="my agent", model="offline:echo")

    assert str(refused.value) == (
        "agent 'my agent': id must be 1-63 lower-case letters, digits, '-' or '_' "
        "(it names a queue), got 'my agent'"
    )
    assert isinstance(refused.value, ConfigurationError)
    assert isinstance(refused.value, ValueError)
    assert not isinstance(refused.value, ValidationError)
    assert refused.value.__cause__ is None  # the user sees agentyard's message alone


def test_every_bad_field_of_an_agent_has_a_line_of_its_own() -> None:
    with pytest.raises(InvalidDefinition) as refused:
        Agent(id="writer", model="", max_tokens=0, max_retries=99, timeout_s=-1)

    lines = str(refused.value).splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["agent 'writer'"] * 4
    assert lines[0].endswith(
        "model must name a model, e.g. 'claude-haiku-4-5' or 'offline:echo', got ''"
    )
    assert lines[1].endswith("max_tokens must be a whole number from 1 to 128000, got 0")
    assert lines[2].endswith("max_retries must be a whole number from 0 to 20, got 99")
    assert lines[3].endswith(
        "timeout_s must be a number of seconds over 0 and at most 3600, got -1"
    )


def test_a_missing_field_and_an_unknown_one_are_named_with_what_an_agent_takes() -> None:
    with pytest.raises(InvalidDefinition) as refused:
        Agent(id="writer", max_token=10)  # type: ignore[call-arg]

    message = str(refused.value)
    assert "agent 'writer': model is required: it must name a model" in message
    assert (
        "agent 'writer': max_token is not something an agent takes (did you mean 'max_tokens'?)"
        in message
    )


def test_an_agent_that_falls_back_to_itself_is_refused() -> None:
    with pytest.raises(
        InvalidDefinition, match=r"fallback must be the id of another agent, got 'a'"
    ):
        _agent("a", fallback="a")


@pytest.mark.parametrize("field", ["cost_limit_usd"])
@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, -math.inf, MAX_CAP_USD * 1.5, 1e-9])
def test_an_agent_cap_that_is_not_a_finite_amount_in_range_is_refused(
    field: str, bad: float
) -> None:
    with pytest.raises(
        InvalidDefinition,
        match=rf"{field} must be .* to \$1,000,000,000 \(the largest amount accepted\)",
    ):
        _agent("a", **{field: bad})


@pytest.mark.parametrize("field", ["budget_usd", "daily_budget_usd"])
@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, MAX_CAP_USD + 1])
def test_a_workflow_budget_that_is_not_a_finite_amount_in_range_is_refused(
    field: str, bad: float
) -> None:
    with pytest.raises(
        InvalidDefinition,
        match=rf"workflow 'w': {field} must be .* to \$1,000,000,000 \(the largest amount "
        rf"accepted\), or None for no cap, got {bad!r}",
    ):
        Workflow.sequence("w", ["a"], **{field: bad})


def test_the_largest_amount_accepted_is_exact_in_micro_dollars_and_far_under_64_bits() -> None:
    workflow = Workflow.sequence("w", ["a"], budget_usd=MAX_CAP_USD, daily_budget_usd=MAX_CAP_USD)
    agent = _agent("a", cost_limit_usd=MAX_CAP_USD)

    assert usd_to_micro(workflow.budget_usd or 0) == MAX_CAP_USD * 1_000_000
    assert usd_to_micro(agent.cost_limit_usd or 0) == MAX_CAP_USD * 1_000_000
    # A cap, with as much again spent and held under it, is still exact in a double (the Lua
    # scripts' numbers) and fits a signed 64-bit integer (PostgreSQL BIGINT, Redis counters).
    assert 3 * usd_to_micro(MAX_CAP_USD) < 2**53 < 2**63


def test_a_deadline_must_be_a_finite_number_of_seconds() -> None:
    with pytest.raises(
        InvalidDefinition,
        match="deadline_s must be a finite number of seconds over 0, or None for no deadline, "
        "got inf",
    ):
        Workflow.sequence("w", ["a"], deadline_s=math.inf)


def test_a_workflow_needs_at_least_one_step_each_an_agent_id() -> None:
    with pytest.raises(
        InvalidDefinition,
        match=r"workflow 'w': steps must be a list of 1 to 200 agent ids or nodes .*, got \[\]",
    ):
        Workflow.sequence("w", [])
    with pytest.raises(
        InvalidDefinition,
        match=r"steps must be a list of 1 to 200 agent ids or nodes .*, got \['a', 'My Agent'\]",
    ):
        Workflow.sequence("w", ["a", "My Agent"])
    with pytest.raises(
        InvalidDefinition,
        match=r"steps must be a list of 1 to 200 agent ids or nodes .*, got 'writer'",
    ):
        Workflow.sequence("w", "writer")  # type: ignore[arg-type]  # not a list of letters


def test_every_bad_field_of_a_workflow_has_a_line_of_its_own() -> None:
    with pytest.raises(InvalidDefinition) as refused:
        Workflow(name="Research", steps=("a",), kind="loop", budget_usd=0)  # type: ignore[arg-type]

    assert [
        line.split(": ", 1)[1].split(" ", 1)[0] for line in str(refused.value).splitlines()
    ] == [
        "name",
        "kind",
        "budget_usd",
    ]
    assert "kind must be one of: sequence, graph, got 'loop'" in str(refused.value)


def test_model_validate_and_model_copy_refuse_what_the_constructor_refuses() -> None:
    with pytest.raises(InvalidDefinition, match="agent 'a': max_retries must be a whole number"):
        Agent.model_validate({"id": "a", "model": "offline:echo", "max_retries": -1})
    with pytest.raises(InvalidDefinition, match="agent 'a': max_retries must be a whole number"):
        Agent.model_validate_json('{"id": "a", "model": "offline:echo", "max_retries": -1}')
    with pytest.raises(InvalidDefinition, match="agent 'B': id must be 1-63"):
        _agent("a").model_copy(update={"id": "B"})
    with pytest.raises(InvalidDefinition, match="workflow 'w': budget_usd must be"):
        Workflow.sequence("w", ["a"]).model_copy(update={"budget_usd": math.nan})


def test_a_valid_copy_is_a_new_definition_with_the_change() -> None:
    agent = _agent("a", max_retries=1)

    copy = agent.model_copy(update={"max_retries": 2})

    assert (copy.id, copy.max_retries, agent.max_retries) == ("a", 2, 1)
    assert Agent.model_validate(agent.model_dump()) == agent


@pytest.mark.parametrize("definition", [Agent, Workflow])
def test_every_field_of_a_definition_says_in_plain_words_what_it_takes(
    definition: type[Agent] | type[Workflow],
) -> None:
    assert set(definition.RULES) == set(definition.model_fields)
    assert all(rule.startswith("must ") for rule in definition.RULES.values())


def test_an_agent_has_the_documented_defaults_and_its_own_queue() -> None:
    agent = _agent("writer")
    assert (agent.max_tokens, agent.max_retries, agent.timeout_s, agent.fallback) == (
        1024,
        3,
        60,
        None,
    )
    assert agent.queue == "agent.writer"


def test_a_definition_is_frozen() -> None:
    agent = _agent("writer")
    with pytest.raises(ValidationError):
        agent.max_retries = 9


# -- registration --------------------------------------------------------------------------------


def test_a_workflow_naming_an_unregistered_agent_is_refused() -> None:
    team = Team("t")
    team.add_agent(_agent("writer"))
    with pytest.raises(UnknownAgent, match=r"names agent\(s\) \['ghost'\]"):
        team.add_workflow(Workflow.sequence("w", ["writer", "ghost"]))
    assert "w" not in team.workflows


def test_a_model_without_a_price_is_refused_at_registration() -> None:
    with pytest.raises(ConfigurationError, match="no price for model"):
        Team("t").add_agent(Agent(id="a", model="mystery-model"))


def test_a_fallback_to_an_unregistered_agent_is_refused_when_the_agent_is_registered() -> None:
    team = Team("t")
    with pytest.raises(
        UnknownAgent,
        match="falls back to 'b', which is not registered; register the fallback agent first",
    ):
        team.add_agent(_agent("a", fallback="b"))
    assert "a" not in team.agents


def test_a_fallback_registered_first_is_accepted() -> None:
    team = Team("t")
    team.add_agent(_agent("b"))
    team.add_agent(_agent("a", fallback="b"))
    assert team.fallback_chain("a") == ["a", "b"]


def test_re_registering_an_agent_so_that_a_fallback_cycle_forms_is_refused() -> None:
    # Given b falls back to a
    team = Team("t")
    team.add_agent(_agent("a"))
    team.add_agent(_agent("b", fallback="a"))
    # When a is registered again, falling back to b, Then it is refused and nothing changes
    with pytest.raises(ConfigurationError):
        team.add_agent(_agent("a", fallback="b"))
    assert team.agents["a"].fallback is None
    assert team.fallback_chain("b") == ["b", "a"]


def test_registering_the_same_definition_twice_is_harmless() -> None:
    team = Team("t")
    team.add_agent(_agent("b"))
    team.add_agent(_agent("a", fallback="b"))
    team.add_agent(_agent("a", fallback="b"))
    assert team.fallback_chain("a") == ["a", "b"]


def test_a_fallback_cycle_that_bypassed_registration_is_still_refused_by_a_workflow() -> None:
    team = Team("t")
    team.agents["a"] = Agent.model_construct(id="a", model="offline:echo", fallback="b")
    team.agents["b"] = Agent.model_construct(id="b", model="offline:echo", fallback="a")
    with pytest.raises(ConfigurationError, match="fallback cycle: a -> b -> a"):
        team.add_workflow(Workflow.sequence("w", ["a"]))


def test_the_fallback_chain_lists_the_agents_in_order() -> None:
    team = Team("t")
    for agent in (_agent("c"), _agent("b", fallback="c"), _agent("a", fallback="b")):
        team.add_agent(agent)
    assert team.fallback_chain("a") == ["a", "b", "c"]


def test_looking_up_an_unknown_workflow_lists_the_registered_ones() -> None:
    team = Team("t")
    team.add_agent(_agent("a"))
    team.add_workflow(Workflow.sequence("known", ["a"]))
    with pytest.raises(UnknownWorkflow, match=r"'nope' is not registered .*registered: known"):
        team.workflow("nope")
