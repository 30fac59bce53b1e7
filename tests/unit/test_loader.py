"""``agentyard`` finds the team a user names as ``package.module:attribute``: every way that
can go wrong says what to do."""

import pytest

from orchestration.loader import load_orchestrator
from storage.errors import ConfigurationError


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
