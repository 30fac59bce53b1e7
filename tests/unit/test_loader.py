"""``agentyard`` finds the team a user names as ``package.module:attribute``: every way that
can go wrong says what to do."""

import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestration import Agent, cli
from orchestration.cli.exit_codes import ExitCode
from orchestration.loader import load_orchestrator
from storage.errors import ConfigurationError, InvalidDefinition


@pytest.mark.parametrize("path", ["", "team:", "team:orc:x", "9team:orc", "team/orc", "team orc"])
def test_a_malformed_module_path_gets_a_clear_error(path: str) -> None:
    with pytest.raises(ConfigurationError, match="not a module path"):
        load_orchestrator(path)


def test_a_module_that_does_not_exist_gets_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="cannot import module 'no_such_team'"):
        load_orchestrator("no_such_team:orc")


def test_an_attribute_that_is_not_an_orchestrator_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="is not an Orchestrator"):
        load_orchestrator("storage.settings:Settings")


# -- what a team module has, and what it raises ------------------------------------------------

TeamModule = Callable[[str], str]


@pytest.fixture
def team_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TeamModule]:
    """Writes a team module of this test's own (``body`` after a header that makes ``settings``)
    and returns its name; it is forgotten afterwards."""
    names: list[str] = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(body: str) -> str:
        name = f"team_{uuid.uuid4().hex[:8]}"
        header = (
            "from orchestration import Agent, Orchestrator, Settings, Workflow\n"
            f"settings = Settings(redis_url='memory://', database_url='sqlite:///{tmp_path}/t.db',"
            f" home={str(tmp_path)!r}, log_level='WARNING', _env_file=None)\n"
        )
        (tmp_path / f"{name}.py").write_text(header + textwrap.dedent(body), encoding="utf-8")
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


def test_an_attribute_the_module_does_not_have_names_the_orchestrators_it_has(
    team_module: TeamModule,
) -> None:
    name = team_module(
        """
        orc = Orchestrator("team", settings)
        backup = Orchestrator("backup", settings)
        """
    )

    with pytest.raises(ConfigurationError) as refused:
        load_orchestrator(f"{name}:orcc")

    assert str(refused.value) == (
        f"module {name!r} has no attribute 'orcc'; it has these Orchestrator objects: backup, orc"
    )


def test_a_module_without_an_orchestrator_says_it_has_none(team_module: TeamModule) -> None:
    name = team_module("team = 'not yet'\n")

    with pytest.raises(ConfigurationError) as refused:
        load_orchestrator(name)  # no attribute: orc is looked for

    assert str(refused.value).startswith(
        f"module {name!r} has no attribute 'orc'; it has no Orchestrator objects"
    )


def test_an_attribute_that_is_there_but_not_an_orchestrator_says_what_it_is(
    team_module: TeamModule,
) -> None:
    name = team_module("orc = None\n")

    with pytest.raises(ConfigurationError, match=rf"^{name}:orc is not an Orchestrator \(found "):
        load_orchestrator(f"{name}:orc")


def test_a_team_module_whose_definition_is_refused_keeps_the_refusals_own_message(
    team_module: TeamModule,
) -> None:
    with pytest.raises(InvalidDefinition) as direct:
        Agent(id="Writer One", model="offline:echo")
    name = team_module(
        """
        orc = Orchestrator("team", settings)
        orc.register_agent(Agent(id="Writer One", model="offline:echo"))
        """
    )

    with pytest.raises(InvalidDefinition) as refused:
        load_orchestrator(f"{name}:orc")

    assert str(refused.value) == str(direct.value)


def test_a_team_module_that_registers_a_workflow_of_unknown_agents_is_a_configuration_error(
    team_module: TeamModule,
) -> None:
    name = team_module(
        """
        orc = Orchestrator("team", settings)
        orc.register_workflow(Workflow.sequence("w", ["ghost"]))
        """
    )

    with pytest.raises(ConfigurationError, match="ghost"):
        load_orchestrator(f"{name}:orc")


# -- through the command ------------------------------------------------------------------------


def test_the_command_names_the_orchestrators_of_a_module_on_one_line_and_exits_3(
    team_module: TeamModule, capsys: pytest.CaptureFixture[str]
) -> None:
    name = team_module('orc = Orchestrator("team", settings)\n')

    assert cli.main(["breakers", f"{name}:orcc"]) == ExitCode.CONFIGURATION == 3
    assert capsys.readouterr().err == (
        f"agentyard: module {name!r} has no attribute 'orcc'; "
        "it has these Orchestrator objects: orc\n"
    )


def test_a_refused_definition_in_the_team_module_exits_3_with_its_message_and_no_traceback(
    team_module: TeamModule, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InvalidDefinition) as direct:
        Agent(id="w", model="offline:echo", max_retries=-1)
    name = team_module(
        """
        orc = Orchestrator("team", settings)
        orc.register_agent(Agent(id="w", model="offline:echo", max_retries=-1))
        """
    )

    assert cli.main(["breakers", f"{name}:orc"]) == ExitCode.CONFIGURATION

    err = capsys.readouterr().err
    assert err == f"agentyard: {direct.value}\n"
    assert "Traceback" not in err


def test_a_module_that_is_not_there_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["breakers", "no_such_team:orc"]) == ExitCode.CONFIGURATION
    assert capsys.readouterr().err.startswith("agentyard: cannot import module 'no_such_team'")


def test_a_team_module_with_a_bug_of_its_own_is_a_configuration_error_saying_where(
    team_module: TeamModule,
) -> None:
    name = team_module(
        """
        orc = Orchestrator("team", settings)
        limits = {"writer": 5}
        orc.register_agent(Agent(id="writer", model="offline:echo", max_retries=limits["editor"]))
        """
    )

    with pytest.raises(ConfigurationError) as refused:
        load_orchestrator(f"{name}:orc")

    message = str(refused.value)
    assert f"importing module {name!r} raised KeyError: 'editor' at " in message
    assert f"{name}.py:6" in message  # the two lines of the header, the blank one, then 3
    assert f"python -c 'import {name}'" in message


def test_a_team_module_that_imports_a_package_not_installed_says_so(
    team_module: TeamModule,
) -> None:
    name = team_module("import no_such_package_anywhere\n")

    with pytest.raises(ConfigurationError, match="raised ModuleNotFoundError: No module named"):
        load_orchestrator(f"{name}:orc")
