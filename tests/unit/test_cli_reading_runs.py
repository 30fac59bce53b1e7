"""``agentyard status [TEAM] RUN_ID`` and ``agentyard messages [TEAM] RUN_ID`` read the run from
the database the team's settings name when a team is given (as ``trace`` and ``graph`` do), else
from the environment's; a run that is not there exits 4."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestration import Agent, Orchestrator, Workflow, cli
from orchestration.cli.exit_codes import ExitCode
from tests.conftest import TeamFactory
from tests.support import run_inline


@dataclass
class Elsewhere:
    """A run of ``orc``, in its database; the shell's settings name another, empty database."""

    orc: Orchestrator
    run_id: str


@pytest.fixture
def elsewhere(
    inline_team: TeamFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Elsewhere:
    orc, bus = inline_team(
        Agent(id="writer", model="offline:echo"), workflows=(Workflow.sequence("w", ["writer"]),)
    )
    result = run_inline(orc, bus, "w", "the telegraph")
    monkeypatch.setenv("AGENTYARD_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    monkeypatch.setenv("AGENTYARD_REDIS_URL", "memory://")
    monkeypatch.setattr("orchestration.loader.load_orchestrator", lambda _path: orc)
    return Elsewhere(orc, result.id)


@pytest.mark.parametrize("command", ["status", "messages"])
def test_with_the_team_the_run_is_read_from_the_teams_database(
    command: str, elsewhere: Elsewhere, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([command, "unit:orc", elsewhere.run_id]) == ExitCode.OK

    captured = capsys.readouterr()
    assert elsewhere.run_id in captured.out
    assert captured.err == ""


@pytest.mark.parametrize("command", ["status", "messages"])
def test_without_the_team_the_environments_database_is_read_and_a_run_not_there_exits_4(
    command: str, elsewhere: Elsewhere, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([command, elsewhere.run_id]) == ExitCode.NOT_FOUND == 4

    captured = capsys.readouterr()
    assert captured.err == (
        f"agentyard: no workflow run with id {elsewhere.run_id!r} in this database\n"
    )
    assert captured.out == ""


def test_the_status_of_one_run_shows_it_in_brief_with_the_team(
    elsewhere: Elsewhere, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status", "unit:orc", elsewhere.run_id, "--brief"]) == ExitCode.OK

    out = capsys.readouterr().out
    assert "succeeded" in out
    assert "the telegraph" not in out  # the output (the echo of the input) is left out
