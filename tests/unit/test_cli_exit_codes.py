"""One exit-code table for every ``agentyard`` command: each error class has its code, given in
one place (``main``), with one line ``agentyard: <message>`` on stderr and no traceback; a bug
is 70 with its traceback; ``agentyard --help`` lists the table."""

from __future__ import annotations

import re

import pytest

from orchestration import cli
from orchestration.cli.exit_codes import ExitCode
from storage.errors import (
    AgentyardError,
    BrokerUnavailable,
    ConfigurationError,
    DatabaseUnavailable,
    DeadLetterNotFound,
    InvalidDefinition,
    InvalidRequest,
    InvalidSettings,
    MessageNotFound,
    RunNotFound,
    ServiceUnavailable,
    UnknownAgent,
    UnknownWorkflow,
    WaitTimeout,
)


def _team_that_raises(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """Every command that loads its team raises ``error`` there."""

    def load(_path: str) -> None:
        raise error

    monkeypatch.setattr("orchestration.loader.load_orchestrator", load)


def test_the_exit_codes_are_the_documented_ones() -> None:
    # Scripts depend on these numbers: a change to one must be deliberate.
    assert {code.name: code.value for code in ExitCode} == {
        "OK": 0,
        "RUN_DID_NOT_SUCCEED": 1,
        "USAGE": 2,
        "CONFIGURATION": 3,
        "NOT_FOUND": 4,
        "UNAVAILABLE": 5,
        "STILL_RUNNING": 6,
        "INTERNAL": 70,
        "INTERRUPTED": 130,
    }


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidRequest("the input is empty"), ExitCode.USAGE),
        (UnknownAgent("no agent 'ghost' is registered"), ExitCode.USAGE),
        (UnknownWorkflow("no workflow 'ghost' is registered"), ExitCode.USAGE),
        (ConfigurationError("set AGENTYARD_REDIS_URL"), ExitCode.CONFIGURATION),
        (InvalidSettings("AGENTYARD_LOG_LEVEL: 'LOUD' is not a level"), ExitCode.CONFIGURATION),
        (InvalidDefinition("agent 'Bad': id must be lower-case"), ExitCode.CONFIGURATION),
        (RunNotFound("no workflow run with id 'r1' in this database"), ExitCode.NOT_FOUND),
        (MessageNotFound("no message 'm1' in the audit table"), ExitCode.NOT_FOUND),
        (DeadLetterNotFound("no dead letter 'd1' in this database"), ExitCode.NOT_FOUND),
        (ServiceUnavailable("cannot reach Redis at redis://h:6379/0"), ExitCode.UNAVAILABLE),
        (BrokerUnavailable("cannot reach the broker at redis://h/0"), ExitCode.UNAVAILABLE),
        (DatabaseUnavailable("cannot reach the database at pg://h/db"), ExitCode.UNAVAILABLE),
        (WaitTimeout("run r1 has not finished after 5s"), ExitCode.STILL_RUNNING),
        (AgentyardError("refused for another reason"), ExitCode.USAGE),
    ],
    ids=lambda given: type(given).__name__ if isinstance(given, Exception) else given.name,
)
def test_each_error_class_exits_with_its_code_and_one_line_on_stderr(
    error: AgentyardError,
    code: ExitCode,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _team_that_raises(monkeypatch, error)

    returned = cli.main(["breakers", "unit:orc"])

    captured = capsys.readouterr()
    assert returned == code
    assert captured.err == f"agentyard: {error}\n"
    assert captured.out == ""


def test_the_code_of_an_error_is_that_of_its_closest_class() -> None:
    # MessageNotFound is an InvalidRequest too; InvalidSettings a ConfigurationError and a
    # ValueError: the most specific class in the table decides.
    assert cli.exit_code_of(MessageNotFound("m")) is ExitCode.NOT_FOUND
    assert cli.exit_code_of(InvalidRequest("r")) is ExitCode.USAGE
    assert cli.exit_code_of(InvalidSettings("s")) is ExitCode.CONFIGURATION


def test_an_unexpected_exception_is_an_internal_error_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _team_that_raises(monkeypatch, RuntimeError("the flux capacitor is empty"))

    returned = cli.main(["breakers", "unit:orc"])

    err = capsys.readouterr().err
    assert returned == ExitCode.INTERNAL == 70
    assert err.startswith("Traceback (most recent call last):")
    assert err.splitlines()[-1] == (
        "agentyard: internal error: RuntimeError: the flux capacitor is empty; this is a bug "
        "in agentyard, please report it with the traceback above"
    )


def test_ctrl_c_exits_130_saying_it_was_interrupted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _team_that_raises(monkeypatch, KeyboardInterrupt())

    assert cli.main(["breakers", "unit:orc"]) == ExitCode.INTERRUPTED == 130
    assert capsys.readouterr().err == "agentyard: interrupted\n"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "agentyard: the following arguments are required: command"),
        (["launch"], "agentyard: argument command: invalid choice: 'launch'"),
        (["run", "unit:orc"], "agentyard: run: the following arguments are required: WORKFLOW"),
        (["status", "r1", "--verbose"], "agentyard: unrecognized arguments: --verbose"),
    ],
)
def test_a_command_line_argparse_refuses_exits_2_with_one_line(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)

    err = capsys.readouterr().err
    assert exited.value.code == ExitCode.USAGE == 2
    assert err.startswith(says)
    assert err.count("\n") == 1, err


def test_the_help_lists_every_exit_code_with_its_name_and_meaning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])

    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    table = help_text[help_text.index("exit codes:") :]
    listed = re.findall(r"^\s+(\d+)\s+([A-Z_]+)\s", table, flags=re.MULTILINE)
    assert listed == [(str(code.value), code.name) for code in ExitCode]
    flowing = " ".join(table.split())
    for code in ExitCode:
        assert f"{code.value} {code.name} {code.meaning}" in flowing
