"""`agentyard trace` and `agentyard graph` of a step with tools: each tool call right after the
answer that asked for it, and a call that waited for a person's approval after the attempt that
stopped for it, the approval shown there; in the graph, a tool loop's answers follow each other
by `turn` edges, the attempt after the approval too, not by `retry`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console

from orchestration.graph_formats import to_mermaid
from orchestration.results import ApprovalOutcome, Tokens, ToolCallResult
from orchestration.run_graph import build_graph
from orchestration.run_trace import CallTrace, Link, RunTrace, StepTrace
from orchestration.trace_report import trace_tree
from orchestration.workflow.gates import tool_node

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _call(attempt: int, outcome: str, link: Link, n: int) -> CallTrace:
    return CallTrace(
        id=f"c{n}",
        step_id="s1",
        attempt=attempt,
        agent="payer",
        requested_agent="payer",
        model="claude-haiku-4-5",
        outcome=outcome,
        error=None,
        tokens=Tokens(10, 2),
        cost_micro=5,
        latency_ms=3.0,
        started_at=T0 + timedelta(seconds=n),
        finished_at=T0 + timedelta(seconds=n),
        link=link,
    )


def _tool(tool: str, turn: int, result: str) -> ToolCallResult:
    return ToolCallResult(
        tool=tool,
        arguments={"order": 7},
        result=result,
        is_error=False,
        status="succeeded",
        runs=1,
        duration_ms=2.0,
        turn=turn,
        index=0,
    )


def _run(step: StepTrace) -> RunTrace:
    return RunTrace(
        id="r1",
        team="t",
        name="payout",
        status="succeeded",
        created_at=T0,
        finished_at=T0 + timedelta(seconds=9),
        error=None,
        steps=(step,),
    )


def _rendered(step: StepTrace) -> list[str]:
    console = Console(width=200, record=True, color_system=None)
    console.print(trace_tree(_run(step)))
    return [line.strip("│├└─ ") for line in console.export_text().splitlines()]


def _approved_payment() -> StepTrace:
    """A step that looked an order up, then asked to pay: the payment waited for approval."""
    approval = ApprovalOutcome(
        gate="pay",
        node=tool_node("s1", 1, 0),
        scope="",
        kind="tool",
        status="approved",
        subject_hash="ab" * 32,
        requests=1,
        requested_at=T0 + timedelta(seconds=3),
        due_at=None,
        on_timeout="reject",
        decided_at=T0 + timedelta(seconds=5),
        decided_by="alice",
        source_id="s1",
    )
    return StepTrace(
        id="s1",
        position=0,
        agent="payer",
        ran_by="payer",
        status="succeeded",
        attempt=2,
        parent_step_id=None,
        error=None,
        calls=(
            _call(1, "tool_use", Link.FIRST, 1),  # turn 0: look_up, runs at once
            _call(1, "tool_use", Link.TURN, 2),  # turn 1: pay, waits for approval
            _call(1, "tool_approval_needed", Link.TURN, 3),
            _call(2, "succeeded", Link.TURN, 6),
        ),
        tool_calls=(_tool("look_up", 0, "found"), _tool("pay", 1, "paid")),
        tool_approvals=(approval,),
    )


def test_each_tool_call_follows_the_answer_that_asked_for_it_and_waits_show_their_approval() -> (
    None
):
    lines = _rendered(_approved_payment())

    at = {
        name: next(i for i, line in enumerate(lines) if line.startswith(name))
        for name in (
            "tool look_up",
            "tool pay",
            "attempt 1  payer  waits for approval",
            "approval pay  approved  by alice",
            "attempt 2  payer  succeeded",
        )
    }
    first_answer, second_answer = (
        i for i, line in enumerate(lines) if line.startswith("attempt 1  payer  tool_use")
    )
    assert first_answer < at["tool look_up"] < second_answer
    assert second_answer < at["attempt 1  payer  waits for approval"]
    assert at["attempt 1  payer  waits for approval"] < at["approval pay  approved  by alice"]
    assert (
        at["approval pay  approved  by alice"] < at["tool pay"] < at["attempt 2  payer  succeeded"]
    )


def test_the_graph_links_a_tool_loops_answers_by_turn_edges_across_an_approval() -> None:
    graph = build_graph(_run(_approved_payment()))

    assert [edge.kind for edge in graph.edges] == ["turn", "turn", "turn"]
    assert "-->|turn|" in to_mermaid(graph)
