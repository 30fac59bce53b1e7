"""Validation checkpoints on the real path, in-process: the step runner, the coordinator, SQLite,
the offline model, and the real SDK against the stub server for an output schema."""

from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest
from pydantic import BaseModel
from sqlmodel import col, select

from orchestration import (
    Agent,
    CheckResult,
    InvalidRequest,
    Orchestrator,
    Workflow,
    WorkflowStatus,
    cli,
    step,
    verify,
)
from storage.db import session_scope
from storage.models import TraceRow
from storage.settings import Settings
from tests.conftest import TeamFactory
from tests.support import InlineBus, commands_read, drain, run_inline
from tests.workflow_functions import seen_refused, sees_the_run
from workers.stub_anthropic import StubAnthropicServer


class Summary(BaseModel):
    title: str
    points: list[str]


def _traces(orc: Orchestrator, run_id: str) -> list[TraceRow]:
    with session_scope(orc.database_url) as session:
        return list(
            session.exec(
                select(TraceRow)
                .where(TraceRow.workflow_id == run_id)
                .order_by(col(TraceRow.attempt))
            ).all()
        )


def test_a_refused_answer_is_asked_for_again_and_every_verdict_is_on_record(
    inline_team: TeamFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    orc, bus = inline_team(
        Agent(id="writer", model="offline:echo"),
        workflows=(Workflow("w", [step("writer", checks=[seen_refused])]),),
    )
    result = run_inline(orc, bus, "w", "the telegraph")

    assert result.status is WorkflowStatus.SUCCEEDED
    [writer] = result.steps
    assert writer.attempt == 2 and writer.checks == (
        CheckResult("seen_refused", False, "answer again", 1),
        CheckResult("seen_refused", True, "answer again", 2),
    )
    first, second = _traces(orc, result.id)
    assert (first.outcome, second.outcome) == ("succeeded", "succeeded")  # both calls answered
    assert second.prompt.startswith("Your answer was refused by the check seen_refused")
    assert result.output == second.output
    commands_read(monkeypatch, orc)
    assert cli.main(["trace", result.id]) == 0
    out = capsys.readouterr().out
    assert "check seen_refused  refused attempt 1: answer again" in out
    assert "check seen_refused  passed attempt 2" in out


def test_a_check_sees_the_facts_the_run_was_submitted_with(inline_team: TeamFactory) -> None:
    orc, bus = inline_team(
        Agent(id="writer", model="offline:echo"),
        workflows=(Workflow("w", [step("writer", checks=[sees_the_run])]),),
    )
    run = orc.submit("w", "the telegraph", facts=["Morse, 1844", "Cooke and Wheatstone, 1837"])
    drain(orc, bus)
    [writer] = run.result().steps
    assert writer.checks[0].reason == (
        "the telegraph|{}|['Morse, 1844', 'Cooke and Wheatstone, 1837']"
    )


@pytest.mark.parametrize(
    ("facts", "says"),
    [("Morse", "must be a list of texts, got str"), (["ok", ""], "fact 1: workflow 'w' is empty")],
)
def test_facts_that_are_not_a_list_of_texts_are_refused_at_submit(
    inline_team: TeamFactory, facts: object, says: str
) -> None:
    orc, _ = inline_team(
        Agent(id="writer", model="offline:echo"), workflows=(Workflow.sequence("w", ["writer"]),)
    )
    with pytest.raises(InvalidRequest, match=says):
        orc.submit("w", "the telegraph", facts=facts)  # type: ignore[arg-type]


@pytest.fixture
def schema_team(stub_settings: Settings) -> Iterator[tuple[Orchestrator, InlineBus]]:
    bus = InlineBus(stub_settings.effective_database_url)
    orc = Orchestrator("schema", stub_settings, bus=bus, redis=fakeredis.FakeRedis())
    orc.register_agent(
        Agent(
            id="summarizer",
            model="claude-haiku-4-5",
            system_prompt="Summarize.",
            output_schema=Summary,
            max_retries=0,
        )
    )
    orc.register_workflow(Workflow.sequence("summarize", ["summarizer"]))
    yield orc, bus
    orc.close()


def test_an_answer_that_breaks_the_agents_schema_is_asked_for_again_through_the_real_sdk(
    schema_team: tuple[Orchestrator, InlineBus], stub: StubAnthropicServer
) -> None:
    orc, bus = schema_team
    stub.script(
        [
            {"text": "Here is a summary: the telegraph was fast."},
            {"text": '{"title": "The telegraph", "points": ["1837", "1844"]}'},
        ]
    )
    result = run_inline(orc, bus, "summarize", "the telegraph")

    assert result.status is WorkflowStatus.SUCCEEDED, result.error
    [summary] = result.steps
    assert summary.data == {"title": "The telegraph", "points": ["1837", "1844"]}
    assert [(c.name, c.ok) for c in summary.checks] == [
        ("output_schema", False),
        ("output_schema", True),
    ]
    assert "is not JSON that Summary takes" in summary.checks[0].reason
    first, second = _traces(orc, result.id)
    assert '"required":["title","points"]' in first.system_prompt  # the agent is told the schema
    assert second.prompt.startswith("Your answer was refused by the check output_schema")


def test_a_verifier_through_the_real_sdk_gates_the_run_on_the_facts(
    stub_settings: Settings, stub: StubAnthropicServer
) -> None:
    bus = InlineBus(stub_settings.effective_database_url)
    orc = Orchestrator("verified", stub_settings, bus=bus, redis=fakeredis.FakeRedis())
    orc.register_agent(Agent(id="writer", model="offline:echo"))
    orc.register_agent(Agent(id="checker", model="claude-haiku-4-5", max_retries=0))
    orc.register_workflow(Workflow("w", ["writer", verify("checker"), "writer"]))
    stub.script(
        [
            {"text": '{"ok": false, "reason": "say when it happened"}'},
            {"text": '```json\n{"ok": true, "reason": ""}\n```'},
        ]
    )
    run = orc.submit("w", "the telegraph", facts=["1844"])
    drain(orc, bus)
    orc.close()

    result = run.result()
    assert result.status is WorkflowStatus.SUCCEEDED, result.error
    writer, checker, after = result.steps
    assert [(c.name, c.ok, c.attempt) for c in writer.checks] == [
        ("verify by checker", False, 1),
        ("verify by checker", True, 2),
    ]
    assert (writer.attempt, checker.attempt, checker.node) == (2, 2, "verify1")
    assert after.node == "writer-2"
