"""Context that fits a budget: ``Agent(context_tokens=N)`` makes the input of every call fit N
tokens, leaving out the oldest exchanges first, then giving earlier steps by their summaries,
and failing before any call when even that does not fit."""

from __future__ import annotations

import pytest

from orchestration import Agent, loop
from orchestration.budget import input_tokens_bound
from orchestration.context import model_request
from orchestration.context_budget import Layout, LocalEstimate, ProviderCount, fit, layouts
from orchestration.guards.spotlight import unmark_prompt as plain
from orchestration.workflow.graph import build_graph
from orchestration.workflow.state import StepState
from storage.errors import ContextTooLarge
from tests.graph_script import Scripted, team_of
from workers.providers.base import ChatMessage, ModelRequest

LONG = "The draft goes on at length about the subject in hand. " * 40  # ~2.2 KB


def _request(text: str, model: str = "offline:echo") -> ModelRequest:
    return ModelRequest(
        model=model,
        system="be brief",
        messages=(ChatMessage("user", text),),
        max_tokens=10,
        timeout_s=1.0,
    )


def _tokens(script: Scripted, step: StepState) -> int:
    """What a step's call is counted at, as the worker will build it."""
    agent = script.team.agent(step.agent)
    return input_tokens_bound(model_request(agent, step.prompt, step.history, "k"))


def test_layouts_leave_out_the_oldest_exchanges_before_any_earlier_step_is_summarized() -> None:
    assert list(layouts(2, 2)) == [
        Layout(0, 0),
        Layout(1, 0),
        Layout(2, 0),
        Layout(2, 1),
        Layout(2, 2),
    ]


def test_fit_takes_the_most_complete_layout_that_fits() -> None:
    sizes = {Layout(0, 0): 900, Layout(1, 0): 700, Layout(1, 1): 400}
    fitted = fit(
        "writer",
        500,
        layouts(1, 1),
        lambda layout: _request("x" * sizes[layout]),
        LocalEstimate(),
    )
    assert fitted.layout == Layout(1, 1)
    assert fitted.tokens <= 500


def test_fit_counts_a_few_layouts_however_many_there_are() -> None:
    counted: list[int] = []

    class Counting:
        def count(self, request: ModelRequest, limit: int) -> int:
            counted.append(len(request.messages[0].content))
            return counted[-1]

    candidates = list(layouts(10, 30))  # 41 layouts, each smaller than the one before
    sizes = {layout: 1000 - 20 * i for i, layout in enumerate(candidates)}
    fitted = fit("writer", 500, candidates, lambda lay: _request("x" * sizes[lay]), Counting())
    assert fitted.layout == candidates[25]  # the first of them at 500 or under
    assert len(counted) <= 7


def test_an_input_that_cannot_fit_raises_context_too_large_saying_what_to_change() -> None:
    with pytest.raises(ContextTooLarge) as raised:
        fit("writer", 300, layouts(0, 0), lambda layout: _request("x" * 1000), LocalEstimate())
    message = str(raised.value)
    assert message.startswith("ContextTooLarge: the input of a call to agent 'writer' needs")
    assert "context_tokens=300" in message and "raise the agent's context_tokens" in message


def test_the_providers_count_is_asked_only_over_the_estimate_and_remembered_by_content() -> None:
    asked: list[ModelRequest] = []

    def ask(request: ModelRequest) -> int:
        asked.append(request)
        return 100

    counter = ProviderCount(ask)
    assert counter.count(_request("short"), limit=1000) < 1000  # the estimate fits: not asked
    assert asked == []
    big = _request("y" * 4000)
    assert counter.count(big, limit=1000) == 100
    assert counter.count(_request("y" * 4000), limit=1000) == 100  # same content: remembered
    assert len(asked) == 1 and counter.asked == 1


def test_a_model_the_provider_cannot_count_keeps_the_estimate() -> None:
    counter = ProviderCount(lambda request: None)
    assert counter.count(_request("z" * 4000), limit=1000) == input_tokens_bound(
        _request("z" * 4000)
    )


def test_without_a_budget_earlier_steps_are_given_by_their_first_sentences() -> None:
    script = Scripted.of(["researcher", "writer", "editor"], "researcher", "writer", "editor")
    script.run_all(lambda step: f"{step.agent_id}: {LONG}")
    [editor] = script.steps_of("editor")
    text = plain(editor.prompt or "")
    assert "Earlier steps (summary):\n- step 1 (researcher): researcher: The draft" in text
    assert f"researcher: {LONG}".strip() not in text


def test_with_room_in_the_budget_earlier_steps_are_given_in_full() -> None:
    editor = Agent(id="editor", model="offline:echo", context_tokens=20_000)
    script = Scripted.of(["researcher", "writer", "editor"], "researcher", "writer", editor)
    script.run_all(lambda step: f"{step.agent_id}: {LONG}")
    [step] = script.steps_of("editor")
    assert f"- step 1 (researcher):\nresearcher: {LONG.strip()}" in plain(step.prompt or "")


def test_earlier_steps_are_summarized_oldest_first_once_their_text_no_longer_fits() -> None:
    editor = Agent(id="editor", model="offline:echo", context_tokens=9_000)
    agents = ("a", "b", "c", "d")
    script = Scripted.of([*agents, "editor"], *agents, editor)
    script.run_all(lambda step: LONG)
    [step] = script.steps_of("editor")
    text = plain(step.prompt or "")
    assert "- step 1 (a), in short:" in text  # the oldest gave way first
    assert "- step 2 (b), in short:" in text
    assert f"- step 3 (c):\n{LONG.strip()}" in text  # a newer one still in full
    assert _tokens(script, step) <= 9_000


def test_a_loop_agent_with_a_budget_fits_after_20_iterations_and_sees_its_last_ones() -> None:
    writer = Agent(id="writer", model="offline:echo", context_tokens=32_000)
    script = Scripted.of(
        ["researcher", loop(["writer", "critic"], max_iterations=20, on_limit="best")],
        "researcher",
        writer,
        "critic",
    )
    script.run_all(lambda step: f"{step.agent_id} {step.iteration}: {LONG}")
    assert script.run.status == "succeeded"
    steps = script.steps_of("loop1/writer")
    assert len(steps) == 20
    assert all(_tokens(script, s) <= 32_000 for s in steps)
    second = steps[1]
    assert second.history and second.history[-1][1].startswith("writer 1:")  # its first draft
    # five exchanges would not fit: the oldest gave way, the most recent ones stayed
    kept = [answer.split(":")[0] for _, answer in steps[-1].history or []]
    assert kept == ["writer 18", "writer 19"]


def test_an_agent_without_a_budget_in_a_loop_keeps_the_exchanges_it_had_before() -> None:
    script = Scripted.of(
        [loop(["writer", "critic"], max_iterations=3, on_limit="best")], "writer", "critic"
    )
    script.run_all(lambda step: f"{step.agent_id} {step.iteration}")
    assert all(step.history is None for step in script.steps_of("loop1/writer"))


def test_a_step_whose_input_cannot_fit_fails_the_run_before_any_call() -> None:
    small = Agent(id="writer", model="offline:echo", context_tokens=256)
    script = Scripted.of(["researcher", "writer", "editor"], "researcher", small, "editor")
    script.run_all(lambda step: LONG)
    [step] = script.steps_of("writer")
    assert (step.status, step.attempt, step.error_kind) == ("failed", 0, "context_too_large")
    assert script.steps_of("editor") == []
    assert script.run.status == "failed"
    assert script.run.error is not None and "ContextTooLarge" in script.run.error
    assert "context_tokens=256" in script.run.error


def _with_summarizer(items: list[object], *agents: str | Agent) -> Scripted:
    return Scripted(
        build_graph(list(items), "w", summarizer="summarizer"),  # type: ignore[arg-type]
        team_of(*agents, "summarizer"),
    )


def _answers(step: StepState) -> str:
    if step.agent_id == "summarizer":
        return "In short: the facts so far."
    return (
        f"{step.agent_id} {step.iteration}: {LONG}"
        if step.iteration
        else f"{step.agent_id}: {LONG}"
    )


def test_earlier_steps_that_no_longer_fit_wait_for_the_summarizers_step_then_read_it() -> None:
    editor = Agent(id="editor", model="offline:echo", context_tokens=6_000)
    script = _with_summarizer(["a", "b", "c", "editor"], "a", "b", "c", editor)
    script.start()
    for agent in ("a", "b", "c"):
        [step] = script.dispatched()
        assert step.agent_id == agent
        script.answer(step, _answers(step))
    [summary] = script.dispatched()  # the editor's step waits for it
    assert (summary.agent_id, summary.node) == ("summarizer", "b~summary")
    [waiting] = script.steps_of("editor")
    assert (waiting.status, waiting.attempt, waiting.prompt) == ("pending", 0, None)
    assert "a: The draft goes on" in plain(summary.prompt or "")  # it reads them in full
    script.answer(summary, _answers(summary))

    [step] = script.dispatched()
    assert step is waiting and step.preamble is not None
    assert "In short: the facts so far." in plain(step.preamble)
    text = plain(step.prompt or "")
    assert "Earlier steps, in the summary above: step 1 (a), step 2 (b)." in text
    assert "The draft goes on" in text  # what it is given, c's output, in full
    assert any(p["source"].startswith("step summarizer") for p in step.provenance or [])
    agent = script.team.agent("editor")
    request = model_request(agent, step.prompt, step.history, "k", step.preamble)
    assert input_tokens_bound(request) <= 6_000
    script.answer(step, "done")
    assert (script.run.status, script.run.output) == ("succeeded", "done")


def test_a_summary_is_written_once_and_read_by_every_later_iteration_of_a_loop() -> None:
    writer = Agent(id="writer", model="offline:echo", context_tokens=9_000)
    script = _with_summarizer(
        ["researcher", "planner", loop(["writer", "critic"], max_iterations=20, on_limit="best")],
        "researcher",
        "planner",
        writer,
        "critic",
    )
    script.run_all(_answers)
    assert script.run.status == "succeeded"
    [summary] = [s for s in script.store.steps if s.agent_id == "summarizer"]
    assert (summary.node, summary.scope) == ("planner~summary", "")
    writers = script.steps_of("loop1/writer")
    assert len(writers) == 20
    # the first iteration had room for both earlier steps; from the second (given a draft and
    # a verdict) they gave way to the summary, the same text, a prefix the cache can keep
    assert writers[0].preamble is None
    assert {s.preamble for s in writers[1:]} == {writers[1].preamble}
    assert "facts so far" in plain(writers[1].preamble or "")
    agent = script.team.agent("writer")
    for step in writers:
        request = model_request(agent, step.prompt, step.history, "k", step.preamble)
        assert input_tokens_bound(request) <= 9_000


def test_a_summary_that_fails_fails_the_steps_that_waited_for_it() -> None:
    editor = Agent(id="editor", model="offline:echo", context_tokens=6_000)
    summarizer = Agent(id="summarizer", model="offline:echo", max_retries=0)
    script = Scripted(
        build_graph(["a", "b", "c", "editor"], "w", summarizer="summarizer"),
        team_of("a", "b", "c", editor, summarizer),
    )
    script.start()
    for _ in range(3):
        [step] = script.dispatched()
        script.answer(step, _answers(step))
    [summary] = script.dispatched()
    script.fail(summary, "rejected")
    [editor_step] = script.steps_of("editor")
    assert (editor_step.status, editor_step.error_kind) == ("failed", "context_too_large")
    assert script.run.status == "failed"
    assert "needed the summary of its earlier steps, whose step failed" in (script.run.error or "")
