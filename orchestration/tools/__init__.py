"""Tools an agent may call: module-level functions with type hints and a docstring.

from orchestration.tools import ToolContext, ToolSpec, describe, spec_of, tool

Pure Python (pydantic, no Celery, no database): ``definition.py`` has ``@tool``, ``ToolSpec``,
``spec_of`` and ``describe``; ``arguments.py`` reads a signature into a JSON schema and validates
a model's arguments against it; ``result_text.py`` turns what a tool returned into a
tool_result's text; ``context.py`` has ``ToolContext``.
"""

from orchestration.tools.context import ToolContext
from orchestration.tools.definition import ToolSpec, describe, spec_of, tool

__all__ = ["ToolContext", "ToolSpec", "describe", "spec_of", "tool"]
