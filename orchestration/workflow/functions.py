"""References to the user's functions that a workflow calls (``until``, ``over``, ``by``, a join's
``merge``, a loop's similarity).

A workflow runs on many workers, and its definition is kept as JSON on every run's row, so a
function is kept by where it lives (``package.module:name``) and found again by importing it. That
works only for a function defined at the top level of a module every worker imports (the team's
module): a lambda, a closure or a method is refused when the workflow is defined, saying so.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from storage.errors import InvalidDefinition


@dataclass(frozen=True, slots=True)
class FunctionRef:
    """A module-level function, by its module and name."""

    module: str
    name: str

    @property
    def path(self) -> str:
        return f"{self.module}:{self.name}"

    @classmethod
    def of(cls, function: object, role: str) -> FunctionRef:
        """The reference of ``function``, used as ``role`` (e.g. "loop(until=...)"); refused
        with ``InvalidDefinition`` unless another process can import it by that reference."""
        if not callable(function):
            raise InvalidDefinition(
                f"{role} must be a function, got {type(function).__name__} {function!r}"
            )
        if not inspect.isfunction(function):
            raise InvalidDefinition(
                f"{role} must be a function defined with def at the top level of a module, got "
                f"{function!r}; wrap it in one"
            )
        module, name, qualname = function.__module__, function.__name__, function.__qualname__
        if name == "<lambda>" or qualname != name:
            where = "a lambda" if name == "<lambda>" else f"{qualname!r}, defined inside another"
            raise InvalidDefinition(
                f"{role} is {where}: another worker cannot find it. Define it with def at the "
                f"top level of the team's module ({module}) and pass that"
            )
        if module == "__main__":
            raise InvalidDefinition(
                f"{role} ({name}) is defined in the script being run (__main__), which other "
                "workers do not import; define it in the team's module"
            )
        found = getattr(importlib.import_module(module), name, None)
        if found is not function:
            raise InvalidDefinition(
                f"{role} ({module}:{name}) is not what {module}.{name} names: another worker "
                "would find something else; pass the module's own function"
            )
        return cls(module, name)

    @classmethod
    def parse(cls, path: str) -> FunctionRef:
        module, _, name = path.partition(":")
        if not module or not name:
            raise InvalidDefinition(f"{path!r} is not a function reference (module:name)")
        return cls(module, name)

    def resolve(self) -> Callable[..., Any]:
        """The function itself, imported; ``InvalidDefinition`` if it is no longer there (a
        deploy removed or renamed it while a run that needs it was in flight)."""
        try:
            found = getattr(importlib.import_module(self.module), self.name)
        except (ImportError, AttributeError) as exc:
            raise InvalidDefinition(
                f"the workflow's function {self.path} cannot be found ({exc}); a run in flight "
                "needs it: deploy it again under that name"
            ) from None
        if not callable(found):
            raise InvalidDefinition(f"the workflow's function {self.path} is not a function")
        return found
