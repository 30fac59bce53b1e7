"""The rules that stop a loop: until, convergence, oscillation, the iteration limit, the budget."""

from __future__ import annotations

from orchestration.workflow.loop_guard import (
    LoopRules,
    Verdict,
    after_iteration,
    lexical_similarity,
    may_start,
)

DRAFT_A = "The telegraph was invented in the 1830s and changed how news travelled."
DRAFT_B = "Railways spread across Europe in the nineteenth century, carrying goods and people."


def approved(verdict: str) -> bool:
    return verdict.startswith("APPROVED")


def test_the_lexical_similarity_is_one_for_the_same_words_and_low_for_other_ones() -> None:
    assert lexical_similarity(DRAFT_A, DRAFT_A.upper() + "!") == 1.0
    assert lexical_similarity(DRAFT_A, DRAFT_B) < 0.6
    assert 0.9 < lexical_similarity(DRAFT_A, DRAFT_A.replace("1830s", "1840s")) < 1.0


def test_until_stops_the_loop_first() -> None:
    rules = LoopRules(max_iterations=5, until=approved, converge_at=0.9)
    assert after_iteration(rules, [DRAFT_A], "APPROVED: fine") == Verdict("until")


def test_a_draft_as_alike_as_converge_at_to_the_previous_one_has_converged() -> None:
    rules = LoopRules(max_iterations=5, converge_at=0.9)
    verdict = after_iteration(rules, [DRAFT_B, DRAFT_A, DRAFT_A + " Also."], "revise")
    assert verdict.stop == "converged" and verdict.similarity is not None
    assert verdict.similarity >= 0.9


def test_a_draft_back_where_it_was_two_iterations_ago_is_oscillating() -> None:
    rules = LoopRules(max_iterations=9, converge_at=0.95)
    verdict = after_iteration(rules, [DRAFT_A, DRAFT_B, DRAFT_A], "revise")
    assert verdict == Verdict("oscillating", 1.0)


def test_drafts_that_keep_changing_go_on_until_the_iteration_limit() -> None:
    rules = LoopRules(max_iterations=2, converge_at=0.95)
    assert after_iteration(rules, [DRAFT_A], "revise").stop is None
    assert after_iteration(rules, [DRAFT_A, DRAFT_B], "revise").stop == "max_iterations"


def test_without_converge_at_no_similarity_is_measured() -> None:
    def never(a: str, b: str) -> float:
        raise AssertionError("not asked")

    rules = LoopRules(max_iterations=3, similarity=never)
    assert after_iteration(rules, [DRAFT_A, DRAFT_A], "revise") == Verdict(None)


def test_a_similarity_of_the_users_own_is_used_and_held_to_zero_to_one() -> None:
    def loud(a: str, b: str) -> float:
        return 7.0

    rules = LoopRules(max_iterations=5, converge_at=1.0, similarity=loud)
    assert after_iteration(rules, [DRAFT_A, DRAFT_B], "revise") == Verdict("converged", 1.0)


def test_an_iteration_whose_worst_case_the_budget_cannot_hold_does_not_start() -> None:
    assert may_start(None, 10**9)
    assert may_start(500, 500)
    assert not may_start(499, 500)
