"""Finds the Orchestrator a user named on the command line as ``package.module:attribute``."""

from __future__ import annotations

import importlib
import os
import re
import sys
import traceback
from types import ModuleType

from orchestration.orchestrator import Orchestrator
from storage.errors import AgentyardError, ConfigurationError, ServiceUnavailable

_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*(:[A-Za-z_][\w]*)?$")
DEFAULT_ATTRIBUTE = "orc"


def check_path(path: str) -> str:
    """``path`` itself if it is spelt as ``package.module:attribute`` (or ``package.module``);
    else a ``ConfigurationError`` saying how to write it. Nothing is imported."""
    if not _PATH.match(path or ""):
        raise ConfigurationError(
            f"{path!r} is not a module path; write it as package.module:attribute, "
            "for example examples.team:orc"
        )
    return path


def load_orchestrator(path: str) -> Orchestrator:
    """``team:orc`` -> the ``orc`` object of module ``team``. ``team`` alone looks for ``orc``.

    Each way this can fail is a ``ConfigurationError`` that says what to do: a path that is not
    one, a module that cannot be found, a module whose definitions agentyard refuses as it is
    imported (the refusal's own message), an attribute it does not have (the Orchestrators it
    has are named), or one that is not an Orchestrator. A server that cannot be reached while
    it is imported stays a ``ServiceUnavailable``."""
    module_name, _, attribute = check_path(path).partition(":")
    attribute = attribute or DEFAULT_ATTRIBUTE
    module = _import(module_name, path)
    if not hasattr(module, attribute):
        found = sorted(
            name for name, value in vars(module).items() if isinstance(value, Orchestrator)
        )
        has = (
            f"it has these Orchestrator objects: {', '.join(found)}"
            if found
            else "it has no Orchestrator objects; make one there with Orchestrator(...)"
        )
        raise ConfigurationError(f"module {module_name!r} has no attribute {attribute!r}; {has}")
    value = getattr(module, attribute)
    if not isinstance(value, Orchestrator):
        raise ConfigurationError(
            f"{module_name}:{attribute} is not an Orchestrator "
            f"(found {type(value).__name__}); name the object made with Orchestrator(...)"
        )
    return value


def _import(module_name: str, path: str) -> ModuleType:
    if os.getcwd() not in sys.path:  # as `celery -A` does: the team module lives in the project
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigurationError(
                f"cannot import module {module_name!r} (from {path!r}); run from the directory "
                "that contains it, or install it"
            ) from None
        raise _failed_import(module_name, exc) from exc
    except (ConfigurationError, ServiceUnavailable):
        raise  # a refused definition or setting, a server down: its own message says what to do
    except AgentyardError as exc:
        # e.g. a workflow registered with an agent the module never registered: still the
        # team's definition that cannot work, whatever class the refusal has
        raise ConfigurationError(str(exc)) from exc
    except Exception as exc:  # a mistake in the team module itself: the user's, not agentyard's
        raise _failed_import(module_name, exc) from exc


def _failed_import(module_name: str, error: Exception) -> ConfigurationError:
    """What to say of a team module whose import raised ``error``: where, and how to see all."""
    frames = traceback.extract_tb(error.__traceback__)
    at = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return ConfigurationError(
        f"importing module {module_name!r} raised {type(error).__name__}: {error}{at}; fix the "
        f"module (python -c 'import {module_name}' shows the whole traceback)"
    )
