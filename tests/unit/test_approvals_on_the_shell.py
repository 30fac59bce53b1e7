"""Approvals through the real path in-process (SQLite, the inline bus): ``agentyard approvals``
lists what waits, ``approve`` and ``reject`` decide (with the team, or with none, the run then
carried on by the coordinators), a refused decision exits non-zero saying why; the approval
webhook is called once the request is on record; the trace shows the gate's request and
decision."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import fakeredis
import pytest

from orchestration import Agent, Orchestrator, Settings, Workflow, WorkflowStatus, approval, cli
from orchestration.cli.exit_codes import ExitCode
from orchestration.maintenance import Maintenance
from orchestration.run_trace import load_run_trace
from orchestration.trace_report import console_for, trace_tree
from tests.conftest import Webhook
from tests.support import InlineBus, drain


@dataclass
class Waiting:
    orc: Orchestrator
    bus: InlineBus
    run_id: str


def _team(settings: Settings) -> tuple[Orchestrator, InlineBus]:
    bus = InlineBus(settings.effective_database_url)
    orc = Orchestrator("unit", settings, bus=bus, redis=fakeredis.FakeRedis())
    for agent_id in ("writer", "publisher"):
        orc.register_agent(Agent(id=agent_id, model="offline:echo"))
    orc.register_workflow(Workflow("publish", ["writer", approval("publish"), "publisher"]))
    return orc, bus


@pytest.fixture
def waiting(unit_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Waiting:
    """A run waiting at its gate; the shell's settings name its database."""
    orc, bus = _team(unit_settings)
    run = orc.submit("publish", "the telegraph")
    drain(orc, bus)
    monkeypatch.setenv("AGENTYARD_DATABASE_URL", unit_settings.effective_database_url)
    monkeypatch.setenv("AGENTYARD_REDIS_URL", "memory://")
    monkeypatch.setenv("AGENTYARD_HOME", str(tmp_path))
    monkeypatch.setattr("orchestration.loader.load_orchestrator", lambda _path: orc)
    return Waiting(orc, bus, run.id)


def test_approvals_lists_each_waiting_run_its_gate_and_what_is_to_be_approved(
    waiting: Waiting, capsys: pytest.CaptureFixture[str]
) -> None:
    [pending] = waiting.orc.approvals.pending()

    assert cli.main(["approvals"]) == ExitCode.OK
    out = capsys.readouterr().out

    assert out.splitlines()[0] == "1 approval(s) waiting, oldest first"
    assert f"run {waiting.run_id}  team unit  workflow publish  gate publish  requested" in out
    assert f"  hash {pending.subject_hash[:16]}\n" in out
    assert "  to approve: " + " ".join(pending.subject.split())[:100] in out
    assert (
        f"  agentyard approve {waiting.run_id} publish --by NAME --hash "
        f"{pending.subject_hash[:16]}\n"
    ) in out
    assert cli.main(["approvals", "unit:orc", "--json"]) == ExitCode.OK
    [listed] = json.loads(capsys.readouterr().out)
    assert listed == pending.as_json()


def test_approve_on_the_shell_with_the_team_lets_the_run_go_on(
    waiting: Waiting, capsys: pytest.CaptureFixture[str]
) -> None:
    [pending] = waiting.orc.approvals.pending()
    decision = ["--by", "alice", "--note", "ok", "--hash", pending.subject_hash[:8]]
    code = cli.main(["approve", "unit:orc", waiting.run_id, "publish", *decision])

    assert code == ExitCode.OK
    assert capsys.readouterr().out == (
        f"approved gate publish of run {waiting.run_id} as alice (hash "
        f"{pending.subject_hash[:16]}): the run goes on\n"
    )
    drain(waiting.orc, waiting.bus)
    assert waiting.orc.run(waiting.run_id).result().status is WorkflowStatus.SUCCEEDED


def test_a_decision_on_the_shell_with_no_team_is_carried_on_by_the_coordinators(
    waiting: Waiting, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["reject", waiting.run_id, "publish", "--by", "bob"]) == ExitCode.OK
    assert capsys.readouterr().out.endswith("the run ends rejected; a coordinator carries it out\n")
    result = waiting.orc.run(waiting.run_id).result()
    assert result.status is WorkflowStatus.WAITING_APPROVAL  # decided, not carried out yet

    sweep = Maintenance(waiting.orc.bus, waiting.orc.settings, team="unit")
    assert sweep.sweep()["approvals_to_settle"] == 1
    drain(waiting.orc, waiting.bus)
    result = waiting.orc.run(waiting.run_id).result()
    assert result.status is WorkflowStatus.REJECTED
    assert result.error == "ApprovalRejected: gate 'publish' was rejected by bob"


def test_a_refused_decision_exits_2_saying_why_and_writes_nothing(
    waiting: Waiting, capsys: pytest.CaptureFixture[str]
) -> None:
    other = "0123456789abcdef"
    code = cli.main(["approve", waiting.run_id, "publish", "--by", "alice", "--hash", other])

    assert code == ExitCode.USAGE == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"agentyard: gate 'publish' of run {waiting.run_id} is to ")
    assert "it changed since you saw it" in captured.err and captured.out == ""
    assert len(waiting.orc.approvals.pending()) == 1
    assert cli.main(["approve", waiting.run_id, "ship", "--by", "alice"]) == ExitCode.USAGE
    assert cli.main(["approve", "no-such-run", "publish", "--by", "alice"]) == ExitCode.NOT_FOUND
    with pytest.raises(SystemExit) as no_one:  # argparse: --by is required
        cli.main(["approve", waiting.run_id, "publish"])
    assert no_one.value.code == ExitCode.USAGE


def test_deciding_twice_on_the_shell_is_refused(
    waiting: Waiting, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["approve", waiting.run_id, "publish", "--by", "alice"]) == ExitCode.OK
    capsys.readouterr()

    assert cli.main(["reject", waiting.run_id, "publish", "--by", "bob"]) == ExitCode.USAGE
    assert "was approved by alice at" in capsys.readouterr().err


def test_the_approval_webhook_is_called_once_the_request_is_on_record(
    unit_settings: Settings, webhook: Webhook
) -> None:
    settings = unit_settings.model_copy(update={"approval_webhook_url": webhook.url})
    orc, bus = _team(settings)
    run = orc.submit("publish", "the telegraph")
    drain(orc, bus)
    [pending] = orc.approvals.pending()

    deadline = time.monotonic() + 30
    while not webhook.received:  # it is posted on a thread of its own
        assert time.monotonic() < deadline, "the webhook was not called"
        time.sleep(0.02)
    [body] = webhook.received
    assert body["event"] == "approval.requested" and body["run_id"] == run.id
    assert (body["gate"], body["subject"], body["subject_hash"]) == (
        "publish",
        pending.subject,
        pending.subject_hash,
    )
    assert body["due_at"] == pending.due_at.isoformat() if pending.due_at else False
    assert (body["team"], body["workflow"], body["on_timeout"]) == ("unit", "publish", "reject")


def test_the_status_of_a_waiting_run_says_what_it_waits_for_and_how_to_decide(
    waiting: Waiting, capsys: pytest.CaptureFixture[str]
) -> None:
    [pending] = waiting.orc.approvals.pending()

    assert cli.main(["status", waiting.run_id, "--brief"]) == ExitCode.OK

    out = capsys.readouterr().out
    assert "status waiting_approval" in out
    assert (
        f"approvals:\n  gate publish requested, hash {pending.subject_hash[:16]}: agentyard "
        f"approve {waiting.run_id} publish --by NAME --hash {pending.subject_hash[:16]}\n"
    ) in out + "\n"
    [waits] = waiting.orc.run(waiting.run_id).result().waiting_for
    assert (waits.gate, waits.status, waits.subject_hash) == (
        "publish",
        "requested",
        pending.subject_hash,
    )


def test_the_trace_shows_a_gates_request_and_decision(waiting: Waiting) -> None:
    waiting.orc.approve(waiting.run_id, "publish", by="alice", note="looks right")
    drain(waiting.orc, waiting.bus)
    [decided] = load_run_trace(waiting.orc.database_url, waiting.run_id).approvals

    console = console_for(file=None)
    with console.capture() as captured:
        console.print(trace_tree(load_run_trace(waiting.orc.database_url, waiting.run_id)))
    text = captured.get()
    assert f"approval publish  approved  by alice  hash {decided.subject_hash[:16]}" in text
    assert "requested " in text and "note: looks right" in text
