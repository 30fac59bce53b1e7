"""Tools on real worker processes, every model turn through the real SDK to the stub server: a
loop of three turns, a tool that raises, arguments the schema refuses, and max_tool_turns."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestration import Orchestrator, WorkflowStatus
from orchestration.run_trace import load_run_trace
from orchestration.trace_report import console_for, trace_tree
from tests.system.conftest import COORDINATOR_AND_AGENTS, started_workers
from tests.system.tool_support import TEAM, tool_team, tool_team_env, uses
from workers.stub_anthropic import StubAnthropicServer

pytestmark = [pytest.mark.integration, pytest.mark.system]


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox.txt"


@pytest.fixture
def extra_env(stub: StubAnthropicServer, outbox: Path) -> dict[str, str]:
    return tool_team_env(stub, outbox, TOOL_TEAM_MAX_TOOL_TURNS="3")


@pytest.fixture
def orc(env: dict[str, str]) -> Orchestrator:
    return tool_team()


@pytest.fixture
def workers(orc: Orchestrator, env: dict[str, str], tmp_path: Path) -> Iterator[None]:
    with started_workers(orc, env, tmp_path, *COORDINATOR_AND_AGENTS, team=TEAM):
        yield


def test_a_tool_loop_of_three_turns_runs_each_tool_once_and_answers(
    workers: None, orc: Orchestrator, stub: StubAnthropicServer, outbox: Path
) -> None:
    stub.script(
        [
            uses(("look_up", {"order": 7})),
            uses(("send_email", {"to": "ada@example.com", "body": "Your order 7 is on its way"})),
            {"text": "Order 7 looked up and Ada told."},
            {"text": "Reviewed."},
        ]
    )

    result = orc.submit("service", "tell the customer of order 7").wait(timeout=60)

    assert result.status is WorkflowStatus.SUCCEEDED, result.error
    clerk = result.steps[0]
    assert clerk.output == "Order 7 looked up and Ada told."
    assert [(c.tool, c.arguments, c.is_error, c.runs) for c in clerk.tool_calls] == [
        ("look_up", {"order": 7}, False, 1),
        ("send_email", {"to": "ada@example.com", "body": "Your order 7 is on its way"}, False, 1),
    ]
    assert '"customer":"Ada"' in (clerk.tool_calls[0].result or "")
    assert outbox.read_text().count("email ") == 1
    assert stub.stats()["calls"] == 4  # three turns of the clerk, one of the reviewer
    # what the tools gave is untrusted text, and the trace says where it came from
    assert {p.source for p in clerk.provenance} >= {"tool look_up", "tool send_email"}
    assert clerk.trust == "untrusted"
    console = console_for(io.StringIO())
    console.print(trace_tree(load_run_trace(orc.database_url, result.id)))
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "tool send_email(to='ada@example.com', body='Your order 7 is on its way')  -> sent" in (
        shown
    )
    assert "0 retries" in shown.splitlines()[1]  # three answers of one attempt, not retries


def test_a_tool_that_raises_and_arguments_the_schema_refuses_come_back_as_errors(
    workers: None, orc: Orchestrator, stub: StubAnthropicServer, outbox: Path
) -> None:
    stub.script(
        [
            uses(("explode", {"reason": "strike"}), ("look_up", {"order": "seven"})),
            {"text": "I could not do it."},
            {"text": "Reviewed."},
        ]
    )

    result = orc.submit("service", "look order 7 up").wait(timeout=60)

    assert result.status is WorkflowStatus.SUCCEEDED, result.error
    exploded, refused = result.steps[0].tool_calls
    assert (exploded.is_error, exploded.runs) == (True, 1)
    assert "RuntimeError: the warehouse is closed: strike" in (exploded.result or "")
    assert (refused.is_error, refused.status) == (True, "failed")
    assert "order: Input should be a valid integer" in (refused.result or "")


def test_a_model_that_keeps_asking_for_tools_fails_the_step_at_max_tool_turns(
    workers: None, orc: Orchestrator, stub: StubAnthropicServer
) -> None:
    stub.script([uses(("look_up", {"order": n})) for n in range(1, 6)])

    result = orc.submit("service", "look every order up").wait(timeout=60)

    assert result.status is WorkflowStatus.FAILED
    assert result.error is not None and "ToolTurnsExhausted" in result.error
    assert "max_tool_turns=3" in result.error
    assert len(result.steps[0].tool_calls) == 3  # three answers' calls ran; the fourth's did not
    assert len(result.steps) == 1  # the reviewer was never asked
