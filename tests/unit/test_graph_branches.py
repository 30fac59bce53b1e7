"""Fan-outs, parallels and routes, decided by the interpreter over an in-memory store: one
branch per item, at most max_parallel at once, a join in item order whatever order the branches
finished in, exactly once, and branches the budget cannot hold never started."""

from __future__ import annotations

import pytest

from orchestration import fan_out, loop, parallel, route
from orchestration.guards.spotlight import unmark_prompt as plain
from orchestration.workflow.state import StepState
from tests.graph_script import Scripted, by_agent, shuffled
from tests.workflow_functions import label_of, lines, merge, not_a_list, nothing, raises

ITEMS = "\n".join(f"source {n}" for n in range(1, 8))


def _items(text: str = ITEMS) -> Scripted:
    return Scripted.of(
        ["researcher", fan_out("summarizer", over=lines), "writer"],
        "researcher",
        "summarizer",
        "writer",
    )


def _answer(step: StepState) -> str:
    if step.agent_id == "researcher":
        return ITEMS
    if step.agent_id == "summarizer":
        assert step.prompt is not None
        return "summary of " + plain(step.prompt).rsplit("\n", 1)[-1]
    return f"{step.agent_id} says ok"


def _writer_prompt(script: Scripted) -> str:
    [writer] = script.steps_of("writer")
    assert writer.prompt is not None
    return plain(writer.prompt)


def test_a_fan_out_runs_its_node_once_per_item_and_the_next_node_once_on_the_joined_text() -> None:
    script = _items()
    run = script.run_all(_answer)

    assert run.status == "succeeded"
    branches = script.steps_of("fan_out1/summarizer")
    assert [s.branch for s in branches] == list(range(7))
    assert [s.scope for s in branches] == [f"fan_out1#{n}" for n in range(7)]
    assert branches[2].prompt is not None
    assert plain(branches[2].prompt).endswith("Item 3 of 7 (fan_out1):\nsource 3")
    prompt = _writer_prompt(script)
    assert prompt.startswith("Request:\nthe request")
    joined = prompt.split("Output of the previous step (fan_out1):\n", 1)[1]
    assert joined.startswith("[1/7: source 1]\nsummary of source 1\n\n[2/7: source 2]")
    assert joined.endswith("[7/7: source 7]\nsummary of source 7")
    assert len(script.events("branches.joined")) == 1  # the join happened once


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_joined_text_is_the_same_whatever_order_the_branches_finished_in(seed: int) -> None:
    in_order, shuffled_run = _items(), _items()
    in_order.run_all(_answer)
    shuffled_run.run_all(_answer, pick=shuffled(seed))

    finished = [
        s.branch
        for s in sorted(shuffled_run.steps_of("fan_out1/summarizer"), key=lambda s: s.finished_at)
    ]  # type: ignore[arg-type, return-value]
    assert finished != sorted(finished) or seed == 0  # the branches did finish out of order
    assert _writer_prompt(shuffled_run) == _writer_prompt(in_order)


def test_at_most_max_parallel_branches_are_under_way_at_any_moment() -> None:
    script = Scripted.of(
        ["researcher", fan_out("summarizer", over=lines, max_parallel=3)],
        "researcher",
        "summarizer",
    )
    script.start()
    most = 0
    while script.dispatched():
        waiting = script.dispatched()
        most = max(most, sum(s.agent_id == "summarizer" for s in waiting))
        script.answer(waiting[-1], _answer(waiting[-1]))  # the newest first: out of order
    assert script.run.status == "succeeded"
    assert most == 3 and len(script.steps_of("fan_out1/summarizer")) == 7


def test_an_empty_list_of_items_is_a_fan_out_done_at_once_not_a_hang() -> None:
    script = Scripted.of(
        ["researcher", fan_out("summarizer", over=nothing), "writer"],
        "researcher",
        "summarizer",
        "writer",
    )
    run = script.run_all(_answer)

    assert run.status == "succeeded" and not script.steps_of("fan_out1/summarizer")
    assert _writer_prompt(script).endswith("Output of the previous step (fan_out1):\n")
    assert script.events("branches.none") == [{"workflow_id": "run", "node": "fan_out1"}]


@pytest.mark.parametrize(
    ("over", "says"),
    [
        (raises, "fan_out1: its over function tests.workflow_functions:raises raised ValueError"),
        (not_a_list, "fan_out1: its over function tests.workflow_functions:not_a_list must "),
    ],
)
def test_an_over_function_that_fails_fails_the_run_saying_so(over: object, says: str) -> None:
    script = Scripted.of(
        ["researcher", fan_out("summarizer", over=over)],
        "researcher",
        "summarizer",  # type: ignore[arg-type]
    )
    run = script.run_all(_answer)

    assert run.status == "failed" and run.error is not None and run.error.startswith(says)


def test_a_branch_that_fails_for_good_fails_the_run_at_once_and_starts_no_more() -> None:
    script = Scripted.of(
        ["researcher", fan_out("summarizer", over=lines, max_parallel=2)],
        "researcher",
        "summarizer",
    )
    script.start()
    [researcher] = script.dispatched()
    script.answer(researcher, ITEMS)
    first, _ = script.dispatched()
    script.fail(first, "rejected")  # not retryable: failed for good

    assert script.run.status == "failed"
    assert script.run.error is not None
    assert script.run.error.startswith("fan_out1, branch 1 of 7: step 2 (summarizer) failed")
    assert len(script.steps_of("fan_out1/summarizer")) == 2  # no branch started after it


def test_collect_joins_what_succeeded_and_lists_what_failed() -> None:
    script = Scripted.of(
        ["researcher", fan_out("summarizer", over=lines, on_failure="collect"), "writer"],
        "researcher",
        "summarizer",
        "writer",
    )
    script.start()
    script.answer(script.dispatched()[0], ITEMS)
    for step in script.dispatched():
        if step.branch == 3:
            script.fail(step, "rejected")
        else:
            script.answer(step, f"summary {step.branch}")
    script.answer(script.dispatched()[0], "written")

    assert script.run.status == "succeeded"
    prompt = _writer_prompt(script)
    assert "[3/7: source 3]\nsummary 2\n\n[5/7: source 5]\nsummary 4" in prompt
    assert prompt.endswith(
        "[failed]\n- 4: source 4: step 5 (summarizer) failed after 1 attempt(s): rejected: "
        "injected rejected"
    )


def test_a_join_agent_is_called_once_with_every_branch_and_its_answer_flows_on() -> None:
    script = Scripted.of(
        ["researcher", fan_out("summarizer", over=lines, join="editor"), "writer"],
        "researcher",
        "summarizer",
        "editor",
        "writer",
    )
    run = script.run_all(
        lambda s: ITEMS if s.agent_id == "researcher" else f"{s.agent_id} {s.branch}"
    )

    assert run.status == "succeeded"
    [join] = script.steps_of("fan_out1.join")
    assert join.agent_id == "editor" and join.scope == "" and join.branch is None
    assert join.prompt is not None and "[7/7: source 7]\nsummarizer 6" in plain(join.prompt)
    assert _writer_prompt(script).endswith("Output of the previous step (fan_out1):\neditor None")


def test_a_merge_function_is_given_the_outputs_in_item_order() -> None:
    script = Scripted.of(
        ["researcher", fan_out("summarizer", over=lines, join=merge), "writer"],
        "researcher",
        "summarizer",
        "writer",
    )
    script.run_all(
        lambda s: ITEMS if s.agent_id == "researcher" else f"s{s.branch}", pick=shuffled(7)
    )

    assert _writer_prompt(script).endswith(
        "\n".join(
            ["s0", "---", "s1", "---", "s2", "---", "s3", "---", "s4", "---", "s5", "---", "s6"]
        )
    )


def test_branches_the_budget_cannot_hold_are_not_started_and_the_run_keeps_what_finished() -> None:
    items = "\n".join(f"item {n}" for n in range(100))
    # A summarizer's call may cost up to about $0.0053; the budget holds about 30 of them.
    script = Scripted.of(
        ["researcher", fan_out("summarizer", over=lines), "writer"],
        "researcher",
        "summarizer",
        "writer",
        budget_micro=160_000,
    )
    run = script.run_all(
        lambda s: items if s.agent_id == "researcher" else f"summary {s.branch}",
        pick=shuffled(3),
        cost_micro=lambda s: 4_000,
    )

    assert run.status == "budget_exceeded"
    started = script.steps_of("fan_out1/summarizer")
    assert 30 <= len(started) < 100  # branches it could not afford were never made
    assert run.cost_micro <= 160_000
    assert run.error is not None and run.error.startswith(
        f"fan_out1: the run's budget could not hold another branch; {len(started)} of 100 ran"
    )
    assert run.output is not None and run.output.count("summary ") == len(started)
    assert not script.steps_of("writer")


def test_a_parallel_gives_each_branch_the_same_input_and_joins_them_in_branch_order() -> None:
    script = Scripted.of(
        ["writer", parallel(["fact_checker", ["style_checker", "editor"]]), "publisher"],
        "writer",
        "fact_checker",
        "style_checker",
        "editor",
        "publisher",
    )
    run = script.run_all(by_agent(writer="the draft"), pick=lambda steps: steps[-1])

    assert run.status == "succeeded"
    facts, style = (
        script.steps_of("parallel1/fact_checker"),
        script.steps_of("parallel1/style_checker"),
    )
    assert facts[0].prompt is not None and style[0].prompt is not None
    assert plain(facts[0].prompt) == plain(style[0].prompt)  # each marked with its own tags
    assert plain(facts[0].prompt).endswith("Output of the previous step (writer):\nthe draft")
    assert (facts[0].branch, style[0].branch) == (0, 1)
    [publisher] = script.steps_of("publisher")
    assert publisher.prompt is not None and plain(publisher.prompt).endswith(
        "[1/2: parallel1/fact_checker]\nfact_checker says ok\n\n"
        "[2/2: parallel1/style_checker]\neditor says ok"
    )


def test_a_route_runs_the_branch_its_label_names_or_its_default() -> None:
    shape = route(
        by=label_of,
        branches={"short": ["publisher"], "long": ["splitter", "publisher"]},
        default="long",
    )
    for text, ran in (
        ("short piece", ["route1/short/publisher"]),
        ("epic saga", ["route1/long/splitter", "route1/long/publisher"]),
    ):
        script = Scripted.of(["writer", shape], "writer", "splitter", "publisher")
        run = script.run_all(by_agent(writer=text))
        assert run.status == "succeeded"
        assert [s.node for s in script.store.steps[1:]] == ran
        [node_run] = script.store.node_runs
        assert node_run.progress["label"] == ("short" if text.startswith("short") else "long")


def test_a_route_to_a_label_it_lacks_with_no_default_fails_the_run_naming_both() -> None:
    script = Scripted.of(
        ["writer", route(by=label_of, branches={"short": ["publisher"]})], "writer", "publisher"
    )
    run = script.run_all(by_agent(writer="medium piece"))

    assert run.status == "failed" and run.error is not None
    assert "returned 'medium', which is not one of its branches ['short']" in run.error
    assert "give route(...) a default" in run.error


def test_a_loop_inside_a_fan_out_runs_per_branch_and_names_its_iterations_and_branch() -> None:
    script = Scripted.of(
        ["researcher", fan_out([loop(["editor"], max_iterations=2, on_limit="best")], over=lines)],
        "researcher",
        "editor",
    )
    run = script.run_all(
        lambda s: "a\nb" if s.agent_id == "researcher" else f"draft {s.branch}.{s.iteration}",
        pick=shuffled(5),
    )

    assert run.status == "succeeded"
    editors = sorted(
        script.steps_of("fan_out1/loop1/editor"), key=lambda s: (s.branch, s.iteration)
    )  # type: ignore[arg-type, return-value]
    assert [(s.branch, s.iteration) for s in editors] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert editors[1].scope == "fan_out1#0;fan_out1/loop1#2"
    assert run.output == "[1/2: a]\ndraft 0.2\n\n[2/2: b]\ndraft 1.2"


def test_a_branch_whose_attempt_failed_is_retried_when_due_and_the_join_waits_for_it() -> None:
    script = Scripted.of(
        [fan_out(["summarizer"], over=lines), "writer"], "summarizer", "writer", input="a\nb"
    )
    script.start()
    first, second = script.dispatched()
    script.fail(first, "rate_limited", retryable=True)  # backoff 0 here: due at once
    script.answer(second, "b done")
    assert not script.steps_of("writer")  # one branch is still to come

    script.advance()  # what the sweep does for a retry that came due
    [retried] = script.dispatched()
    assert (retried.id, retried.attempt) == (first.id, 2)
    script.answer(retried, "a done")
    [writer] = script.steps_of("writer")
    assert writer.prompt is not None and plain(writer.prompt).endswith(
        "[1/2: a]\na done\n\n[2/2: b]\nb done"
    )


def test_a_join_agent_that_fails_fails_the_run_naming_the_join() -> None:
    script = Scripted.of(
        [fan_out("summarizer", over=lines, join="editor")], "summarizer", "editor", input="a\nb"
    )
    script.start()
    for step in script.dispatched():
        script.answer(step, "done")
    [join] = script.dispatched()
    script.fail(join, "rejected")

    assert script.run.status == "failed" and script.run.error is not None
    assert script.run.error.startswith("fan_out1, its join: step 3 (editor) failed after 1")


def test_a_branch_handed_to_a_fallback_keeps_its_prompt_and_goes_on() -> None:
    from orchestration import Agent

    script = Scripted.of(
        [fan_out("summarizer", over=lines)],
        "backup",
        Agent(id="summarizer", model="offline:echo", max_retries=0, fallback="backup"),
        input="a\nb",
    )
    script.start()
    first, second = script.dispatched()
    prompt = first.prompt
    script.fail(first, "overloaded")
    assert (first.status, first.ran_by, first.prompt) == ("dispatched", "backup", prompt)
    script.answer(first, "a by the backup")
    script.answer(second, "b")

    assert script.run.status == "succeeded"
    assert script.run.output == "[1/2: a]\na by the backup\n\n[2/2: b]\nb"


def test_a_parallel_that_collects_goes_on_with_what_succeeded() -> None:
    script = Scripted.of(
        [parallel(["fact_checker", "style_checker"], on_failure="collect")],
        "fact_checker",
        "style_checker",
    )
    script.start()
    facts, style = script.dispatched()
    script.fail(style, "rejected")
    script.answer(facts, "facts fine")

    assert script.run.status == "succeeded" and script.run.output is not None
    assert script.run.output.startswith("[1/2: parallel1/fact_checker]\nfacts fine\n\n[failed]")


def test_a_run_past_its_deadline_during_a_fan_out_times_out_and_ignores_late_branches() -> None:
    from datetime import timedelta

    script = Scripted.of([fan_out("summarizer", over=lines)], "summarizer", input="a\nb")
    script.start()
    first, second = script.dispatched()
    script.run.deadline_at = script.now  # the deadline passes
    script.answer(first, "a done")

    assert script.run.status == "timed_out"
    assert script.run.error is not None and "1 step(s) done" in script.run.error
    script.now += timedelta(seconds=1)
    plan = script.answer(second, "b done")  # recorded later: nothing follows it
    assert not plan.messages and not plan.run_changed and script.run.status == "timed_out"
