"""Finds the Orchestrator a user named on the command line as ``package.module:attribute``."""

from __future__ import annotations

import importlib
import os
import re
import sys

from orchestration.orchestrator import Orchestrator
from storage.errors import ConfigurationError

_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*(:[A-Za-z_][\w]*)?$")


def load_orchestrator(path: str) -> Orchestrator:
    """``team:orc`` -> the ``orc`` object of module ``team``. ``team`` alone looks for ``orc``."""
    if not _PATH.match(path or ""):
        raise ConfigurationError(
            f"{path!r} is not a module path; write it as package.module:attribute, "
            "for example examples.team:orc"
        )
    module_name, _, attribute = path.partition(":")
    if os.getcwd() not in sys.path:  # as `celery -A` does: the team module lives in the project
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigurationError(
                f"cannot import module {module_name!r} (from {path!r}); run from the directory "
                "that contains it, or install it"
            ) from None
        raise
    found = getattr(module, attribute or "orc", None)
    if not isinstance(found, Orchestrator):
        raise ConfigurationError(
            f"{module_name}:{attribute or 'orc'} is not an Orchestrator "
            f"(found {type(found).__name__}); name the object made with Orchestrator(...)"
        )
    return found
