"""Fan-in joins branches in their order, whatever order they finished in."""

from __future__ import annotations

import itertools

import pytest

from orchestration.workflow.joins import BranchOutcome, joined_text, label_of
from storage.errors import InvalidDefinition

OUTCOMES = [
    BranchOutcome(0, "telegraph", output="Morse, 1837."),
    BranchOutcome(1, "telephone", output="Bell, 1876."),
    BranchOutcome(2, "radio", output="Marconi, 1895."),
]


def test_the_joined_text_is_the_same_in_whatever_order_the_branches_finished() -> None:
    texts = {joined_text(list(order)) for order in itertools.permutations(OUTCOMES)}
    assert texts == {
        "[1/3: telegraph]\nMorse, 1837.\n\n[2/3: telephone]\nBell, 1876.\n\n[3/3: radio]\n"
        "Marconi, 1895."
    }


def test_collected_failures_are_listed_after_what_succeeded() -> None:
    outcomes = [OUTCOMES[0], BranchOutcome(1, "telephone", error="rate_limited"), OUTCOMES[2]]
    text = joined_text(outcomes)
    assert text.endswith("[failed]\n- 2: telephone: rate_limited")
    assert text.index("Morse") < text.index("Marconi") < text.index("[failed]")


def merge_all(outputs: list[str]) -> str:
    return " | ".join(outputs)


def test_a_merge_function_gets_the_outputs_that_succeeded_in_order() -> None:
    shuffled = [OUTCOMES[2], OUTCOMES[0], OUTCOMES[1]]
    assert joined_text(shuffled, merge_all) == "Morse, 1837. | Bell, 1876. | Marconi, 1895."


def test_a_merge_function_that_returns_no_text_is_refused_saying_so() -> None:
    def broken(outputs: list[str]) -> str:
        return len(outputs)  # type: ignore[return-value]

    with pytest.raises(InvalidDefinition, match="must return text, it returned int"):
        joined_text(OUTCOMES, broken)


def test_a_branch_given_twice_is_an_error_not_a_silent_duplicate() -> None:
    with pytest.raises(ValueError, match="given twice"):
        joined_text([OUTCOMES[0], OUTCOMES[0]])


def test_an_items_label_is_its_first_line_cut_short() -> None:
    assert label_of("  Telegraph\nmore") == "Telegraph"
    assert label_of("x" * 100, limit=10) == "xxxxxxxxx…"
