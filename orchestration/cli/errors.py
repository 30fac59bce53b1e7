"""The errors only the command raises. Each is an ``AgentyardError``; ``main`` gives it its exit
code with the others."""

from __future__ import annotations

from storage.errors import AgentyardError


class DeadLetterNotFound(AgentyardError, LookupError):
    """A dead letter id that is not in the database."""
