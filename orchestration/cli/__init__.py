"""The ``agentyard`` command: workers, beat, Flower, running and inspecting workflows, deciding
approvals, the demo.

``main`` is the entry point; each command lives in the module of its subject (``services``,
``runs``, ``approvals``, ``operations``, ``tools``), its arguments in ``parser``, the exit codes in
``exit_codes``. A command returns OK, or RUN_DID_NOT_SUCCEED when the run it followed did not;
every other outcome is an exception, which ``main`` alone turns into a line on stderr and a code.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

from orchestration.cli import exit_codes
from orchestration.cli.exit_codes import ExitCode
from orchestration.cli.parser import build_parser
from storage.errors import (
    AgentyardError,
    ConfigurationError,
    DeadLetterNotFound,
    InvalidRequest,
    MessageNotFound,
    RunNotFound,
    ServiceUnavailable,
    WaitTimeout,
)

__all__ = ["ExitCode", "build_parser", "exit_code_of", "exit_codes", "main"]

_EXIT_CODE_OF: dict[type[AgentyardError], ExitCode] = {
    # Any other error agentyard raises on purpose refused what it was asked to do.
    AgentyardError: ExitCode.USAGE,
    InvalidRequest: ExitCode.USAGE,  # UnknownAgent, UnknownWorkflow, ...
    ConfigurationError: ExitCode.CONFIGURATION,  # InvalidSettings, InvalidDefinition, ...
    RunNotFound: ExitCode.NOT_FOUND,
    MessageNotFound: ExitCode.NOT_FOUND,  # an InvalidRequest, but the answer is "not there"
    DeadLetterNotFound: ExitCode.NOT_FOUND,
    ServiceUnavailable: ExitCode.UNAVAILABLE,  # BrokerUnavailable, DatabaseUnavailable
    WaitTimeout: ExitCode.STILL_RUNNING,
}


def exit_code_of(error: AgentyardError) -> ExitCode:
    """The exit code of ``error``: that of its closest class in the table (MessageNotFound is
    also an InvalidRequest, and is NOT_FOUND)."""
    return next(_EXIT_CODE_OF[cls] for cls in type(error).__mro__ if cls in _EXIT_CODE_OF)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code. A command line argparse refuses exits (SystemExit) with
    USAGE, as argparse does."""
    args = build_parser().parse_args(argv)
    try:
        code: ExitCode = args.func(args)
        return code
    except AgentyardError as exc:
        print(f"agentyard: {exc or type(exc).__name__}", file=sys.stderr)
        return exit_code_of(exc)
    except KeyboardInterrupt:
        print("agentyard: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        print(
            f"agentyard: internal error: {type(exc).__name__}: {exc}; this is a bug in "
            "agentyard, please report it with the traceback above",
            file=sys.stderr,
        )
        return ExitCode.INTERNAL
