"""The exit codes of the ``agentyard`` command: one table, the same for every command.

A script can tell from the code alone what happened: the run failed (1), the command line was
wrong (2), the settings or the team are (3), an id is not in the database (4), a server is down
(5, try again later), or the run is still going (6). ``main`` maps each error to its code in one
place; ``agentyard --help`` lists this table.
"""

from __future__ import annotations

import textwrap
from enum import IntEnum


class ExitCode(IntEnum):
    """An exit code, with what it means as ``agentyard --help`` and the README say it."""

    meaning: str

    def __new__(cls, code: int, meaning: str) -> ExitCode:
        member = int.__new__(cls, code)
        member._value_ = code
        member.meaning = meaning
        return member

    OK = 0, "the command did what it was asked (run: the run succeeded; --no-wait: submitted)"
    """The command did what it was asked."""

    RUN_DID_NOT_SUCCEED = (
        1,
        "run followed a run that ended failed, budget_exceeded, timed_out or rejected",
    )
    """``run`` followed the run to its end, and it did not succeed."""

    USAGE = 2, "the command line or the request was refused (nothing was done)"
    """argparse's own errors, ``InvalidRequest`` (``UnknownAgent``, ``UnknownWorkflow``,
    ``ApprovalRefused``), a missing TEAM, input that is not UTF-8."""

    CONFIGURATION = 3, "the settings, the team module or its definitions cannot work"
    """``ConfigurationError``: ``InvalidSettings``, ``InvalidDefinition``, a team that does not
    import."""

    NOT_FOUND = 4, "an id looked up in the database is not there (run, message, dead letter)"
    """``RunNotFound``, ``MessageNotFound``, a dead letter id."""

    UNAVAILABLE = 5, "a server cannot be reached (the broker, Redis, the database): try again"
    """``ServiceUnavailable``: ``BrokerUnavailable``, ``DatabaseUnavailable``."""

    STILL_RUNNING = 6, "run stopped following at --timeout; the run goes on"
    """``WaitTimeout``: ``agentyard status RUN_ID`` shows it later."""

    INTERNAL = 70, "an unexpected error, a bug in agentyard: the traceback is on stderr"
    """Any other exception; 70 is EX_SOFTWARE of sysexits.h."""

    INTERRUPTED = 130, "interrupted (Ctrl-C)"
    """128 + SIGINT, as shells report it."""


def table(width: int = 79) -> str:
    """The exit codes as text for ``agentyard --help``, each meaning wrapped to ``width``."""
    name_width = max(len(code.name) for code in ExitCode)
    lines = ["exit codes:"]
    for code in ExitCode:
        head = f"  {code.value:>3}  {code.name:<{name_width}}  "
        lines += textwrap.wrap(
            code.meaning, width, initial_indent=head, subsequent_indent=" " * len(head)
        )
    return "\n".join(lines)
