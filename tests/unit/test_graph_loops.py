"""Loops that always stop, decided by the interpreter over an in-memory store: until, converged,
oscillating, max_iterations and budget, and what flows on."""

from __future__ import annotations

import pytest

from orchestration import loop
from orchestration.guards.spotlight import unmark_prompt as plain
from orchestration.workflow.state import StepState
from tests.graph_script import Scripted
from tests.workflow_functions import approved, raises, same_length

AGENTS = ("writer", "editor", "critic", "publisher")


def _drafts(*texts: str, verdict: str = "needs work"):  # type: ignore[no-untyped-def]
    """Answer the editor with ``texts`` in turn (the last one again after), the critic with
    ``verdict``, anyone else with '<agent> says ok'."""
    made: list[str] = []

    def answer(step: StepState) -> str:
        if step.agent_id == "editor":
            made.append(texts[min(len(made), len(texts) - 1)])
            return made[-1]
        if step.agent_id == "critic":
            return verdict
        return f"{step.agent_id} says ok"

    return answer


def _loop_outcome(script: Scripted) -> dict[str, object]:
    [run] = [r for r in script.store.node_runs if r.kind == "loop"]
    return {"status": run.status, **run.progress}


def test_a_loop_stops_when_until_approves_and_the_last_draft_flows_on() -> None:
    script = Scripted.of(
        ["writer", loop(["editor", "critic"], max_iterations=5, until=approved), "publisher"],
        *AGENTS,
    )
    verdicts = iter(["needs work", "APPROVED, ship it"])

    def answer(step: StepState) -> str:
        if step.agent_id == "editor":
            return f"draft {step.iteration}"
        return next(verdicts) if step.agent_id == "critic" else "ok"

    run = script.run_all(answer)

    assert run.status == "succeeded"
    assert [s.iteration for s in script.steps_of("loop1/editor")] == [1, 2]
    assert [s.iteration for s in script.steps_of("loop1/critic")] == [1, 2]
    assert _loop_outcome(script)["stopped_by"] == "until"
    [publisher] = script.steps_of("publisher")
    assert publisher.prompt is not None
    assert plain(publisher.prompt).endswith("Output of the previous step (loop1):\ndraft 2")


def test_the_next_iteration_gives_the_first_node_its_draft_and_the_verdict_on_it() -> None:
    script = Scripted.of(
        ["writer", loop(["editor", "critic"], max_iterations=2, on_limit="best")], *AGENTS
    )
    verdict = {"editor": "draft", "critic": "too long"}
    script.run_all(
        lambda s: f"{verdict.get(s.agent_id, 'writer says ok')} {s.iteration or ''}".strip()
    )

    first, second = script.steps_of("loop1/editor")
    assert first.prompt is not None and second.prompt is not None
    assert plain(first.prompt).endswith("Output of the previous step (writer):\nwriter says ok")
    assert plain(second.prompt).endswith(
        "Your draft from iteration 1, and the verdict on it:\ndraft 1\n\nVerdict (critic):\n"
        "too long 1"
    )
    assert "writer says ok" in plain(second.prompt)  # what came before the loop is still summarized
    assert (first.iteration, second.iteration) == (1, 2) and first.branch is None


def test_a_draft_as_good_as_the_last_one_stops_the_loop_as_converged_after_the_whole_body() -> None:
    script = Scripted.of(
        [loop(["editor", "critic"], max_iterations=10, converge_at=0.9)], "editor", "critic"
    )
    run = script.run_all(_drafts("the same draft, word for word"))

    outcome = _loop_outcome(script)
    assert (run.status, outcome["stopped_by"], outcome["similarity"]) == (
        "succeeded",
        "converged",
        1.0,
    )
    # the iteration where convergence showed ran whole: two calls of each agent
    assert len(script.steps_of("loop1/editor")) == len(script.steps_of("loop1/critic")) == 2
    assert run.output == "the same draft, word for word"


def test_a_draft_that_comes_back_two_iterations_later_stops_the_loop_as_oscillating() -> None:
    script = Scripted.of(
        [loop(["editor", "critic"], max_iterations=10, converge_at=0.95)], "editor", "critic"
    )
    run = script.run_all(
        _drafts(
            "Short and blunt: the telegraph changed news.",
            "A long, careful account of how wires carried prices, wars and weather.",
            "Short and blunt: the telegraph changed news.",
        )
    )

    assert run.status == "succeeded"
    assert _loop_outcome(script)["stopped_by"] == "oscillating"
    assert len(script.steps_of("loop1/editor")) == 3


def test_a_loop_that_runs_out_of_iterations_fails_the_run_with_loop_limit_reached() -> None:
    script = Scripted.of(
        [loop(["editor", "critic"], max_iterations=3, until=approved), "publisher"],
        "editor",
        "critic",
        "publisher",
    )
    run = script.run_all(lambda s: f"draft {s.iteration}" if s.agent_id == "editor" else "no")

    assert run.status == "failed"
    assert run.error is not None and run.error.startswith(
        "LoopLimitReached: loop loop1 stopped after 3 iteration(s) (max_iterations)"
    )
    assert "on_limit='best'" in run.error  # what to do about it
    assert run.output == "draft 3"  # the last draft is kept
    assert len(script.steps_of("loop1/editor")) == 3 and not script.steps_of("publisher")


def test_a_loop_that_may_give_its_best_goes_on_with_the_last_draft() -> None:
    script = Scripted.of(
        [loop(["editor", "critic"], max_iterations=2, on_limit="best"), "publisher"],
        "editor",
        "critic",
        "publisher",
    )
    run = script.run_all(lambda s: f"draft {s.iteration}" if s.agent_id == "editor" else "no")

    assert run.status == "succeeded"
    assert _loop_outcome(script)["stopped_by"] == "max_iterations"
    [publisher] = script.steps_of("publisher")
    assert publisher.prompt is not None and plain(publisher.prompt).endswith("\ndraft 2")


@pytest.mark.parametrize(("on_limit", "status"), [("fail", "failed"), ("best", "succeeded")])
def test_an_iteration_the_budget_cannot_hold_is_not_started(on_limit: str, status: str) -> None:
    # An iteration's worst case is about $0.0131 (offline models cost what haiku does: 1024
    # output tokens at $5/M a call, input at the dearest rate): $0.02 holds the first, which
    # spends $0.008; what is left cannot hold the second.
    script = Scripted.of(
        [loop(["editor", "critic"], max_iterations=5, on_limit=on_limit)],  # type: ignore[arg-type]
        "editor",
        "critic",
        budget_micro=20_000,
    )
    run = script.run_all(lambda s: f"draft {s.iteration}", cost_micro=lambda s: 4_000)

    assert run.status == status
    assert _loop_outcome(script)["stopped_by"] == "budget"
    assert len(script.steps_of("loop1/editor")) == 1  # the second iteration never started
    assert run.cost_micro == 8_000
    if on_limit == "fail":
        assert run.error is not None and "(budget)" in run.error
    [event] = script.events("loop.unaffordable")
    assert event["iteration"] == 2


def test_a_users_similarity_function_decides_convergence() -> None:
    script = Scripted.of(
        [loop(["editor"], max_iterations=5, converge_at=1.0, similarity=same_length)], "editor"
    )
    run = script.run_all(_drafts("aaaa", "bbbb"))

    assert run.status == "succeeded" and _loop_outcome(script)["stopped_by"] == "converged"
    editor = script.steps_of("loop1/editor")
    assert len(editor) == 2 and editor[1].prompt is not None
    assert plain(editor[1].prompt).endswith(
        "Your draft from iteration 1:\naaaa"
    )  # one node: no verdict


def test_an_until_function_that_raises_fails_the_run_naming_it() -> None:
    script = Scripted.of([loop(["editor"], max_iterations=5, until=raises)], "editor")
    run = script.run_all(lambda s: "draft")

    assert run.status == "failed"
    assert run.error == (
        "loop1: its until function tests.workflow_functions:raises raised ValueError: "
        "no opinion on 'draft'"
    )
