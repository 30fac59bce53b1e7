"""agentyard's priorities: 0..9, 9 the most urgent (as RabbitMQ). How each broker reads them on
the wire is ``bus.brokers``'s (Celery's Redis transport serves 0 first, so there it is inverted).
"""

from __future__ import annotations

from storage.errors import InvalidRequest

LOWEST = 0
HIGHEST = 9
DEFAULT = 5
# A message this urgent that is not acknowledged in time is published again at HIGHEST.
ESCALATE_FROM = 8
# Every producer, worker and Flower must use the same steps, or messages land in lists nobody reads.
PRIORITY_STEPS = list(range(LOWEST, HIGHEST + 1))


def check(priority: int) -> int:
    if (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not LOWEST <= priority <= HIGHEST
    ):
        raise InvalidRequest(
            f"priority {priority!r} is outside {LOWEST}..{HIGHEST} ({HIGHEST} is the most urgent)"
        )
    return priority


def escalated(priority: int) -> int:
    """The priority of a message published again because it was not acknowledged in time:
    an urgent one (``ESCALATE_FROM`` or more) goes to the front, any other keeps its place."""
    return HIGHEST if check(priority) >= ESCALATE_FROM else priority
