"""Module-level tools the tool-definition tests use, as a team module would define them (with
string annotations, as ``from __future__ import annotations`` makes them)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from orchestration.tools import ToolContext, tool

CALLS: list[str] = []  # what record() was called with


class Priority(Enum):
    LOW = "low"
    HIGH = "high"


class Address(BaseModel):
    """A postal address."""

    street: str
    city: str


@dataclass(frozen=True)
class Receipt:
    refund_id: str
    amount: float
    at: datetime


@tool
def search_docs(
    query: Annotated[str, Field(description="What to look for, in a few words")],
    limit: int = 5,
) -> list[str]:
    """Search the product documentation.

    Returns the titles of the pages that match, best first.
    """
    return [f"{query} {n}" for n in range(limit)]


@tool(side_effects=True, idempotent=True, timeout_s=20)
def refund(
    order_id: Annotated[str, Field(description="The order's id, e.g. 'ord_123'")],
    amount: float,
    ctx: ToolContext,
) -> Receipt:
    """Refund part or all of an order; returns the receipt."""
    return Receipt(
        refund_id=f"re_{ctx.idempotency_key}", amount=amount, at=datetime(2025, 1, 2, tzinfo=UTC)
    )


@tool(needs_approval=True)
def whoami(context: ToolContext) -> dict[str, str]:
    """Say which run, step and call this is."""
    return {"run": context.run_id, "step": context.step_id, "call": context.call_id}


def every_kind(  # a plain function: a tool with the defaults
    text: str,
    count: int,
    ratio: float,
    flag: bool,
    tags: list[str],
    mode: Literal["fast", "thorough"],
    priority: Priority,
    address: Address,
    note: str | None = None,
    retries: int = 3,
    limit: int = Field(10, ge=1, le=50, description="At most this many"),
) -> None:
    """Take one parameter of each kind a tool may have."""


@tool
def lookup(json: str, copy: bool = False, _private: int = 0) -> str:
    """Parameters named like attributes of a pydantic model, or private ones, are fine."""
    return f"{json} {copy} {_private}"


@tool(side_effects=True)
def record(note: str) -> None:
    """Write a note down; returns nothing."""
    CALLS.append(note)


@tool
def give_back(kind: Literal["dict", "dataclass", "model", "none", "str", "list"]) -> Any:
    """Return a value of the kind asked for."""
    return {
        "dict": {"b": 1, "a": "é"},
        "dataclass": Receipt("re_1", 2.5, datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
        "model": Address(street="1 Main St", city="Springfield"),
        "none": None,
        "str": "plain text, not JSON",
        "list": [Priority.HIGH, 1.5, None],
    }[kind]


@tool
def fails(reason: str) -> str:
    """Always fail, with ``reason``."""
    raise LookupError(reason)


def traced(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A decorator of the user's own, put on a tool."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


@traced
@tool(side_effects=True, timeout_s=5)
def send_email(to: str, body: str) -> str:
    """Send an email; returns its id."""
    return f"sent to {to}"
