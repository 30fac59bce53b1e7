"""The one place where agentyard's priorities meet the broker's.

agentyard (like RabbitMQ) uses 0..9 with 9 the most urgent. Celery's Redis transport emulates
priorities with one list per step and serves 0 FIRST, so the mapping inverts the scale.
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


def to_broker(priority: int) -> int:
    """agentyard priority (9 most urgent) -> Celery Redis priority (0 served first)."""
    return HIGHEST - check(priority)


def escalated(priority: int) -> int:
    """The priority of a message published again because it was not acknowledged in time:
    an urgent one (``ESCALATE_FROM`` or more) goes to the front, any other keeps its place."""
    return HIGHEST if check(priority) >= ESCALATE_FROM else priority
