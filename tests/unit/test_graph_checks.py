"""Validation checkpoints decided by the interpreter over an in-memory store: a refused answer
is asked for again with the reason, then of the agent's fallback, then fails the run with
ValidationFailed; an output schema is a check; a check node judges what it is given."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from orchestration import Agent, check, fan_out, parallel, step, verify
from orchestration.guards.spotlight import unmark_prompt as plain
from orchestration.workflow.checks import CheckResult
from orchestration.workflow.graph import CheckNode, VerifyNode
from orchestration.workflow.state import StepState
from tests.graph_script import Scripted
from tests.workflow_functions import answers_text, cites_sources, lines, sees_the_run, uses_a_fact


class Summary(BaseModel):
    title: str
    points: list[str]


def _verdicts(step: StepState) -> list[tuple[str, bool, int]]:
    return [(c["name"], c["ok"], c["attempt"]) for c in step.checks or []]


def test_a_refused_answer_is_asked_for_again_with_the_reason_and_then_goes_on() -> None:
    script = Scripted.of(
        [step("writer", checks=[cites_sources]), "publisher"], "writer", "publisher"
    )
    script.start()
    [writer] = script.dispatched()
    first_prompt = writer.prompt
    script.answer(writer, "a draft with no sources")

    assert (writer.status, writer.attempt, writer.reasks) == ("dispatched", 2, 1)
    assert plain(writer.prompt) == (
        "Your answer was refused by the check cites_sources: cite at least one source as [1]\n"
        "Answer again, in full, with that fixed."
    )
    assert writer.history == [[first_prompt, "a draft with no sources"]]  # what it said, first
    assert not script.steps_of("publisher")
    script.answer(writer, "a draft citing [1]")

    assert _verdicts(writer) == [("cites_sources", False, 1), ("cites_sources", True, 2)]
    [publisher] = script.steps_of("publisher")
    assert publisher.prompt is not None and plain(publisher.prompt).endswith("a draft citing [1]")


def test_a_check_that_keeps_refusing_goes_to_the_fallback_then_fails_the_run() -> None:
    script = Scripted.of(
        [step("writer", checks=[cites_sources], max_reasks=1)],
        "backup",
        Agent(id="writer", model="offline:echo", fallback="backup"),
    )
    script.start()
    for expected in ("writer", "writer", "backup", "backup"):
        [current] = script.dispatched()
        assert current.agent == expected
        script.answer(current, "no sources")

    assert script.run.status == "failed"
    assert script.run.error == (
        "ValidationFailed: step 1 (backup): the check cites_sources refused its answer: "
        "cite at least one source as [1]"
    )
    [writer] = script.store.steps
    assert [attempt for _, _, attempt in _verdicts(writer)] == [1, 2, 3, 4]


def test_an_answer_that_is_not_the_agents_json_is_refused_and_the_parsed_one_is_kept() -> None:
    script = Scripted.of(
        ["summarizer"], Agent(id="summarizer", model="offline:echo", output_schema=Summary)
    )
    script.start()
    [summarizer] = script.dispatched()
    script.answer(summarizer, '{"title": "Telegraph"}')  # points missing

    assert summarizer.status == "dispatched" and summarizer.prompt is not None
    assert "the answer is not JSON that Summary takes: points: Field required" in (
        summarizer.prompt
    )
    script.answer(summarizer, '```json\n{"title": "Telegraph", "points": ["1844"]}\n```')

    assert script.run.status == "succeeded"
    assert summarizer.data == {"title": "Telegraph", "points": ["1844"]}
    assert _verdicts(summarizer) == [("output_schema", False, 1), ("output_schema", True, 2)]


def test_a_check_node_passes_what_it_accepts_on_and_has_the_step_before_it_asked_again() -> None:
    script = Scripted.of(["writer", check(cites_sources), "publisher"], "writer", "publisher")
    script.start()
    [writer] = script.dispatched()
    script.answer(writer, "no sources")
    assert (writer.status, writer.attempt) == ("dispatched", 2)
    script.answer(writer, "sources: [1]")

    [publisher] = script.steps_of("publisher")
    assert publisher.prompt is not None
    assert plain(publisher.prompt).endswith("Output of the previous step (writer):\nsources: [1]")
    assert publisher.parent_step_id == writer.id  # the check passed the writer's output on
    assert _verdicts(writer) == [("cites_sources", False, 1), ("cites_sources", True, 2)]


def test_a_check_node_after_a_fan_out_fails_the_run_when_it_refuses() -> None:
    script = Scripted.of(
        [fan_out("summarizer", over=lines), check(cites_sources), "publisher"],
        "summarizer",
        "publisher",
        input="a\nb",
    )
    run = script.run_all(lambda s: "no sources")

    assert run.status == "failed" and not script.steps_of("publisher")
    assert run.error == (
        "ValidationFailed: check1: the check cites_sources refused what it was given: "
        "cite at least one source as [1]"
    )


@pytest.mark.parametrize(
    ("checkpoint", "refusal"),
    [
        (check(cites_sources), "the check cites_sources refused what it was given"),
        (verify("checker"), "checker refused what it was given"),
    ],
    ids=["check", "verify"],
)
def test_a_checkpoint_first_in_a_branch_that_refuses_fails_the_branch_not_the_step_outside_it(
    checkpoint: CheckNode | VerifyNode, refusal: str
) -> None:
    script = Scripted.of(
        ["writer", parallel([[checkpoint, "publisher"]])], "writer", "checker", "publisher"
    )
    run = script.run_all(
        lambda s: '{"ok": false, "reason": "no"}' if s.agent_id == "checker" else "no sources"
    )

    [writer] = script.steps_of("writer")
    assert (writer.status, writer.attempt) == ("succeeded", 1)  # not asked again
    assert run.status == "failed" and not script.steps_of("parallel1/publisher")
    name = f"parallel1/{'check1' if isinstance(checkpoint, CheckNode) else 'verify1'}"
    assert run.error is not None and run.error.startswith(
        f"parallel1, branch 1 of 1: ValidationFailed: {name}: {refusal}: "
    )


def test_a_check_sees_the_input_the_earlier_outputs_and_the_facts() -> None:
    script = Scripted.of(
        ["researcher", step("writer", checks=[sees_the_run, uses_a_fact])],
        "researcher",
        "writer",
        input="the telegraph",
    )
    script.store.given_facts = ["Morse, 1844"]
    script.start()
    script.answer(script.dispatched()[0], "facts")
    [writer] = script.dispatched()
    script.answer(writer, "in 1844, Morse sent...")
    assert writer.status == "dispatched"  # it did not use a fact as given
    script.answer(writer, "Morse, 1844: the first message")

    saw = CheckResult.from_json((writer.checks or [])[0]).reason
    assert saw == "the telegraph|{'researcher': 'facts'}|['Morse, 1844']"
    assert script.run.status == "succeeded"


def test_a_check_that_does_not_answer_a_verdict_fails_the_run_naming_it() -> None:
    script = Scripted.of([step("writer", checks=[answers_text])], "writer")
    run = script.run_all(lambda s: "anything")

    assert run.status == "failed" and run.error is not None
    assert run.error.startswith(
        "writer: its check tests.workflow_functions:answers_text must return a Verdict"
    )


def test_a_step_without_checks_or_schema_keeps_no_verdict() -> None:
    script = Scripted.of(["writer"], "writer")
    script.run_all(lambda s: json.dumps({"any": "thing"}))

    assert script.store.steps[0].checks is None and script.store.steps[0].data is None


def test_a_verifier_judges_against_the_facts_and_its_refusal_has_the_step_asked_again() -> None:
    script = Scripted.of(
        ["writer", verify("checker"), "publisher"], "writer", "checker", "publisher"
    )
    script.store.given_facts = ["Morse sent the first message in 1844"]
    script.start()
    [writer] = script.dispatched()
    script.answer(writer, "Morse sent it in 1838.")
    [checker] = script.dispatched()
    assert checker.prompt is not None
    assert "Facts:\n- Morse sent the first message in 1844" in plain(checker.prompt)
    assert "Output of the previous step (writer):\nMorse sent it in 1838." in plain(checker.prompt)
    assert plain(checker.prompt).endswith(
        '{"ok": true or false, "reason": "what is wrong, or empty"}'
    )
    script.answer(checker, '{"ok": false, "reason": "the year is 1844"}')

    assert (writer.status, writer.attempt) == ("dispatched", 2)
    assert writer.prompt is not None and "the year is 1844" in plain(writer.prompt)
    script.answer(writer, "Morse sent it in 1844.")
    assert (checker.status, checker.attempt) == ("dispatched", 2)  # asked again, about it
    assert checker.prompt is not None and "Morse sent it in 1844." in plain(checker.prompt)
    script.answer(checker, '{"ok": true, "reason": ""}')

    [publisher] = script.steps_of("publisher")
    assert publisher.prompt is not None
    assert plain(publisher.prompt).endswith(
        "Output of the previous step (writer):\nMorse sent it in 1844."
    )
    assert [(name, ok, n) for name, ok, n in _verdicts(writer)] == [
        ("verify by checker", False, 1),
        ("verify by checker", True, 2),
    ]


def test_a_verifier_that_does_not_answer_the_verdicts_shape_fails_the_run() -> None:
    script = Scripted.of(["writer", verify("checker", against="input")], "writer", "checker")
    run = script.run_all(lambda s: "looks fine to me" if s.agent_id == "checker" else "text")

    assert run.status == "failed" and run.error is not None
    assert run.error.startswith(
        "ValidationFailed: verify1: its verifier (checker) did not answer the verdict's shape"
    )
    [checker] = script.steps_of("verify1")
    assert checker.prompt is not None and "The request, as given:\n- the request" in plain(
        checker.prompt
    )
