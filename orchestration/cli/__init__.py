"""The ``agentyard`` command: workers, beat, Flower, running and inspecting workflows, the demo.

``main`` is the entry point; each command lives in the module of its subject (``services``,
``runs``, ``operations``, ``tools``), its arguments in ``parser``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from orchestration.cli.exit_codes import EXIT_FAILED, EXIT_USAGE
from orchestration.cli.parser import build_parser
from storage.errors import AgentyardError, WaitTimeout

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except WaitTimeout as exc:
        print(f"agentyard: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except AgentyardError as exc:
        print(f"agentyard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
