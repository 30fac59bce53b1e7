"""``agentyard run TEAM WORKFLOW INPUT``: its exit code says how the run it followed ended, and
``-`` reads the input from standard input (UTF-8, strictly)."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from orchestration import Agent, Orchestrator, Workflow, cli
from orchestration.cli.exit_codes import ExitCode
from tests.conftest import TeamFactory
from tests.support import InlineBus, drain


@dataclass
class Submitted:
    id: str = "run-1"


@dataclass
class RecordingTeam:
    """A team that only records what it is asked to submit."""

    submitted: list[tuple[str, str, int]] = field(default_factory=list)

    def submit(self, workflow: str, text: str, priority: int) -> Submitted:
        self.submitted.append((workflow, text, priority))
        return Submitted()


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> RecordingTeam:
    team = RecordingTeam()
    monkeypatch.setattr("orchestration.loader.load_orchestrator", lambda _path: team)
    return team


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


# -- the exit code of a run ----------------------------------------------------------------------


@pytest.fixture
def worked_team(
    inline_team: TeamFactory, monkeypatch: pytest.MonkeyPatch
) -> Callable[[bool], Orchestrator]:
    """The team ``run`` loads: ``w`` succeeds, ``doomed`` fails (its agent is refused on every
    call). With ``work``, the workers have done all there is to do before ``run`` follows it."""

    def make(work: bool) -> Orchestrator:
        orc, bus = inline_team(
            Agent(id="writer", model="offline:echo"),
            Agent(id="critic", model="offline:echo?fail=rejected"),
            workflows=(
                Workflow.sequence("w", ["writer"]),
                Workflow.sequence("doomed", ["critic"]),
            ),
        )
        if work:
            _work_on_submit(monkeypatch, orc, bus)
        monkeypatch.setattr("orchestration.loader.load_orchestrator", lambda _path: orc)
        return orc

    return make


def _work_on_submit(monkeypatch: pytest.MonkeyPatch, orc: Orchestrator, bus: InlineBus) -> None:
    submit = orc.submit

    def submit_and_work(*args: Any, **kwargs: Any) -> Any:
        run = submit(*args, **kwargs)
        drain(orc, bus)
        return run

    monkeypatch.setattr(orc, "submit", submit_and_work)


def test_a_run_that_succeeds_exits_0(
    worked_team: Callable[[bool], Orchestrator], capsys: pytest.CaptureFixture[str]
) -> None:
    worked_team(True)

    assert cli.main(["run", "unit:orc", "w", "the telegraph"]) == ExitCode.OK == 0
    assert "succeeded" in capsys.readouterr().out


def test_a_run_that_fails_exits_1(
    worked_team: Callable[[bool], Orchestrator], capsys: pytest.CaptureFixture[str]
) -> None:
    worked_team(True)

    assert cli.main(["run", "unit:orc", "doomed", "the telegraph"]) == 1
    assert cli.main(["run", "unit:orc", "doomed", "x"]) == ExitCode.RUN_DID_NOT_SUCCEED
    captured = capsys.readouterr()
    assert "failed" in captured.out
    assert captured.err == ""


def test_a_run_submitted_without_waiting_exits_0_whatever_becomes_of_it(
    worked_team: Callable[[bool], Orchestrator], capsys: pytest.CaptureFixture[str]
) -> None:
    worked_team(False)

    assert cli.main(["run", "unit:orc", "doomed", "x", "--no-wait"]) == ExitCode.OK
    assert capsys.readouterr().out.startswith("submitted run ")


def test_a_run_still_going_at_the_timeout_exits_6_saying_how_to_look_again(
    worked_team: Callable[[bool], Orchestrator], capsys: pytest.CaptureFixture[str]
) -> None:
    worked_team(False)  # no worker: the run never moves

    returned = cli.main(["run", "unit:orc", "w", "x", "--timeout", "0.01"])

    captured = capsys.readouterr()
    run_id = captured.out.splitlines()[0].removeprefix("submitted run ")
    assert returned == ExitCode.STILL_RUNNING == 6
    assert captured.err == (
        f"agentyard: run {run_id} has not finished after 0.01s (--timeout); it goes on: "
        f"`agentyard status unit:orc {run_id}` shows where it is\n"
    )


def test_an_unknown_workflow_exits_2_and_submits_nothing(
    worked_team: Callable[[bool], Orchestrator], capsys: pytest.CaptureFixture[str]
) -> None:
    worked_team(False)

    assert cli.main(["run", "unit:orc", "ghost", "x"]) == ExitCode.USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("agentyard: ") and "ghost" in captured.err
    assert captured.err.count("\n") == 1


# -- the input from standard input ---------------------------------------------------------------


def test_a_dash_reads_the_whole_input_from_standard_input(
    recorder: RecordingTeam, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a 2 MB document, far more than a command line can carry, in many scripts
    document = "Télégraphe électrique, 1837 — 電信 📡\n" * 50_000
    assert len(document.encode()) > 2_000_000
    _stdin(monkeypatch, document.encode())

    assert cli.main(["run", "unit:orc", "w", "-", "--no-wait", "--priority", "7"]) == 0

    assert recorder.submitted == [("w", document, 7)]


def test_an_input_other_than_a_dash_is_the_input_itself(
    recorder: RecordingTeam, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stdin(monkeypatch, b"not this")

    assert cli.main(["run", "unit:orc", "w", "--no-wait", "--", "-x-"]) == 0

    assert recorder.submitted == [("w", "-x-", 5)]


def test_standard_input_that_is_not_utf8_is_refused_naming_the_byte_offset(
    recorder: RecordingTeam, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, "café au lait".encode("latin-1"))  # é is byte 3: 0xe9

    assert cli.main(["run", "unit:orc", "w", "-", "--no-wait"]) == ExitCode.USAGE

    captured = capsys.readouterr()
    assert captured.err.startswith("agentyard: standard input is not UTF-8: byte 3 (0xe9) ")
    assert captured.err.count("\n") == 1
    assert captured.out == ""
    assert recorder.submitted == []


def test_the_run_help_says_a_dash_reads_standard_input(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])

    out = capsys.readouterr().out
    assert "- reads it from standard input (UTF-8)" in out
    assert "agentyard run examples.team:orc research - < report.md" in out
