"""Every numeric option of every ``agentyard`` command is checked as the command line is read:
a value it cannot take is refused with exit code 2 and one line saying what it takes, before
anything is loaded or started."""

from __future__ import annotations

import pytest

from orchestration import cli
from orchestration.cli.exit_codes import ExitCode

TEAM = "unit:orc"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["worker", TEAM, "--concurrency", "0"], "a whole number of at least 1, not '0'"),
        (["worker", TEAM, "--concurrency", "-4"], "a whole number of at least 1, not '-4'"),
        (["worker", TEAM, "--concurrency", "2.5"], "a whole number of at least 1, not '2.5'"),
        (["worker", TEAM, "--metrics-port", "65536"], "a port number 0..65535"),
        (["run", TEAM, "w", "x", "--timeout", "0"], "a number of seconds over 0"),
        (["run", TEAM, "w", "x", "--timeout", "-1"], "a number of seconds over 0"),
        (["run", TEAM, "w", "x", "--timeout", "nan"], "a number of seconds over 0"),
        (["run", TEAM, "w", "x", "--timeout", "inf"], "a number of seconds over 0"),
        (["run", TEAM, "w", "x", "--priority", "10"], "priority"),
        (["costs", TEAM, "--days", "0"], "a whole number of at least 1, not '0'"),
        (["costs", "rebuild", TEAM, "--days", "-7"], "a whole number of at least 1"),
        (
            ["flower", TEAM, "--port", "65536"],
            "a port number 0..65535 (0: any free port), not '65536'",
        ),
        (["flower", TEAM, "--port", "-1"], "a port number 0..65535 (0: any free port), not '-1'"),
        (
            ["stub-anthropic", "--port", "70000"],
            "a port number 0..65535 (0: any free port), not '70000'",
        ),
        (
            ["stub-anthropic", "--port", "http"],
            "a port number 0..65535 (0: any free port), not 'http'",
        ),
        (["stub-anthropic", "--latency", "-0.5"], "a number of seconds, 0 or more, not '-0.5'"),
        (["deadletters", "--limit", "0"], "a whole number of at least 1"),
        (["find", "--limit", "-1"], "a whole number of at least 1"),
    ],
)
def test_a_numeric_option_out_of_its_range_is_refused_saying_what_it_takes(
    argv: list[str],
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("orchestration.loader.load_orchestrator", _must_not_load)

    with pytest.raises(SystemExit) as exited:
        cli.main(argv)

    err = capsys.readouterr().err
    assert exited.value.code == ExitCode.USAGE
    assert err.startswith(f"agentyard: {argv[0]}: argument "), err
    assert says in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "option", "value"),
    [
        (["worker", TEAM, "--concurrency", "1"], "concurrency", 1),
        (["worker", TEAM], "concurrency", 8),
        (["run", TEAM, "w", "x", "--timeout", "0.5"], "timeout", 0.5),
        (["run", TEAM, "w", "x"], "timeout", 600.0),
        (["costs", TEAM, "--days", "1"], "days", 1),
        (["flower", TEAM, "--port", "0"], "port", 0),
        (["flower", TEAM], "port", 5555),
        (["stub-anthropic", "--port", "65535"], "port", 65535),
        (["stub-anthropic", "--latency", "0"], "latency", 0.0),
    ],
)
def test_the_edges_of_each_range_and_the_defaults_are_taken(
    argv: list[str], option: str, value: float
) -> None:
    assert getattr(cli.build_parser().parse_args(argv), option) == value


@pytest.mark.parametrize("command", ["worker", "beat", "flower", "breakers", "costs"])
def test_a_team_that_is_not_a_module_path_is_a_usage_error_for_every_command(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("orchestration.loader.load_orchestrator", _must_not_load)

    with pytest.raises(SystemExit) as exited:
        cli.main([command, "team/orc"])

    assert exited.value.code == ExitCode.USAGE
    assert "argument TEAM: 'team/orc' is not a module path" in capsys.readouterr().err


@pytest.mark.parametrize("action", ["show", "rebuild"])
def test_costs_with_an_action_but_no_team_is_a_usage_error(
    action: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("orchestration.loader.load_orchestrator", _must_not_load)

    assert cli.main(["costs", action]) == ExitCode.USAGE
    assert capsys.readouterr().err == (
        f"agentyard: costs {action} needs the team: agentyard costs {action} TEAM\n"
    )


def test_a_worker_told_to_serve_nothing_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("orchestration.loader.load_orchestrator", lambda _path: object())

    assert cli.main(["worker", TEAM]) == ExitCode.USAGE
    assert capsys.readouterr().err == (
        "agentyard: say what this worker serves: --agents a,b, --all-agents, or --coordinator\n"
    )


def _must_not_load(path: str) -> None:
    raise AssertionError(f"the command loaded {path!r} although its command line was refused")
