"""The call stage alone: the model asked under the agent's deadline, through the offline provider.
What the call came to is handed back, an error included; an answer that came after the agent's
deadline is used, and said to be late."""

from __future__ import annotations

from dataclasses import replace

from structlog.testing import capture_logs

from orchestration import Agent, Settings
from orchestration.context import model_request
from orchestration.pricing import PriceTable
from orchestration.step.call import ModelCalls
from orchestration.team import Team
from storage.errors import Overloaded
from workers.providers.registry import Providers


def _calls(unit_settings: Settings, *agents: Agent) -> ModelCalls:
    team = Team("unit")
    for agent in agents:
        team.add_agent(agent)
    return ModelCalls(team, Providers(unit_settings))


def test_an_answer_is_a_call_made_and_costed_at_the_teams_prices(unit_settings: Settings) -> None:
    writer = Agent(id="writer", model="offline:echo", max_tokens=200)
    calls = _calls(unit_settings, writer)

    call = calls.call(writer, model_request(writer, "the telegraph", None, "s1:1"))

    assert call.outcome == "succeeded" and call.made and not call.late
    assert call.response is not None and call.response.text
    assert call.usage.input_tokens > 0 and call.usage.output_tokens > 0
    assert call.cost == PriceTable.default().cost_micro(writer.model, call.usage) > 0


def test_a_provider_error_is_what_the_call_came_to_not_an_exception(
    unit_settings: Settings,
) -> None:
    writer = Agent(id="writer", model="offline:echo?fail=overloaded", max_tokens=200)
    calls = _calls(unit_settings, writer)

    call = calls.call(writer, model_request(writer, "the telegraph", None, "s1:1"))

    assert isinstance(call.error, Overloaded) and call.outcome == "overloaded"
    assert call.made and call.response is None and call.cost == 0


def test_an_answer_that_came_after_the_agents_deadline_is_used_and_said_to_be_late(
    unit_settings: Settings,
) -> None:
    # Given an answer that takes 0.2 s to come, for an agent whose deadline is 0.05 s, on a
    # request whose deadline on the wire lets it come
    writer = Agent(id="writer", model="offline:echo?latency=0.2", max_tokens=200, timeout_s=0.05)
    calls = _calls(unit_settings, writer)
    request = replace(model_request(writer, "the telegraph", None, "s1:1"), timeout_s=5.0)

    # When the model is called
    with capture_logs() as logs:
        call = calls.call(writer, request)

    # Then the answer is the call's, paid for, and on record as late
    assert call.outcome == "succeeded" and call.late and call.cost > 0
    assert call.response is not None and call.latency_ms >= 200
    late = [line for line in logs if line["event"] == "step.late_answer_used"]
    assert len(late) == 1 and late[0]["deadline_s"] == 0.05 and late[0]["wire_ms"] == 200.0
