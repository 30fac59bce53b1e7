"""The argparse types of the command's options: each reads one option's text, and refuses what
it cannot take saying what it wants."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bus import priorities
from storage.errors import AgentyardError, ConfigurationError


def team(text: str) -> str:
    """A team as ``package.module:attribute``. Only its spelling is checked here: the command
    imports it when it runs (``orchestration.loader``)."""
    from orchestration.loader import check_path

    try:
        return check_path(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def priority(text: str) -> int:
    try:
        return priorities.check(int(text))
    except (ValueError, AgentyardError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def bounded(
    convert: Callable[[str], float],
    low: float,
    high: float,
    what: str,
    *,
    above_low: bool = False,
) -> Callable[[str], Any]:
    """An argparse type: ``text`` as ``convert`` reads it, a finite number from ``low`` (or, with
    ``above_low``, over it) to ``high``; anything else is refused saying ``what`` is wanted."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            value = math.nan
        in_range = (low < value if above_low else low <= value) and value <= high
        if not (in_range and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{what}, not {text!r}")
        return value

    return parse


port = bounded(int, 0, 65535, "a port number 0..65535 (0: any free port)")
positive = bounded(int, 1, math.inf, "a whole number of at least 1")
usd_amount = bounded(float, 0, math.inf, "an amount in USD, 0 or more (e.g. 0.05)")
seconds = bounded(float, 0, math.inf, "a number of seconds, 0 or more")
seconds_over_zero = bounded(
    float, 0, math.inf, "a number of seconds over 0 (e.g. 600)", above_low=True
)


def since(text: str) -> timedelta | datetime:
    """``7d``, ``12h``, ``30m``, ``90s``, or an ISO date or time (UTC unless it says)."""
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    amount, unit = text[:-1], text[-1:]
    if unit in units and amount.replace(".", "", 1).isdigit() and float(amount) > 0:
        return timedelta(**{units[unit]: float(amount)})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a time window like 7d, 12h or 30m, or a date like 2025-01-31, not {text!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
