"""Fan-in: the branches of a fan-out or a parallel become one text, the same whatever order they
finished in.

Branches are joined in item (or branch) order, each output under a header naming its place, so
that a run is reproducible and the next node can tell the parts apart. With
``on_failure="collect"`` the branches that failed for good are listed after the ones that
succeeded, with their errors; with ``"fail_fast"`` there are none to list (the run failed). A
``merge`` function of the user's, when given, gets the outputs of the branches that succeeded, in
order, and its answer is the joined text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from storage.errors import InvalidDefinition


@dataclass(frozen=True, slots=True)
class BranchOutcome:
    """One branch as the join sees it: its place, and its output or its error."""

    branch: int  # 0-based, in item (or branch) order
    label: str  # what the header calls it: the item, shortened, or the branch's first node
    output: str | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None


def joined_text(
    outcomes: Sequence[BranchOutcome], merge: Callable[[list[str]], str] | None = None
) -> str:
    """The branches' outputs as one text, in branch order (never in the order they finished)."""
    ordered = sorted(outcomes, key=lambda outcome: outcome.branch)
    if len({outcome.branch for outcome in ordered}) != len(ordered):
        raise ValueError("a branch was given twice to the join")
    done = [outcome for outcome in ordered if outcome.succeeded]
    failed = [outcome for outcome in ordered if not outcome.succeeded]
    if merge is not None:
        merged = merge([outcome.output or "" for outcome in done])
        if not isinstance(merged, str):
            raise InvalidDefinition(
                f"a join's merge function must return text, it returned {type(merged).__name__}"
            )
        return merged
    parts = [
        f"[{outcome.branch + 1}/{len(ordered)}: {outcome.label}]\n{outcome.output or ''}"
        for outcome in done
    ]
    if failed:
        parts.append(
            "[failed]\n" + "\n".join(f"- {o.branch + 1}: {o.label}: {o.error}" for o in failed)
        )
    return "\n\n".join(parts)


def label_of(item: str, limit: int = 60) -> str:
    """An item of a fan-out as a header shows it: its first line, cut to ``limit``."""
    first = item.strip().splitlines()[0] if item.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"
