"""What a step's agent reads, composed when the step is made: its prompt, its earlier exchanges,
and the run's summary when it needs one, fitted to its agent's context budget.

Without ``context_tokens``, a prompt holds the request, the first sentences of the nodes before
it and what it is given, after the agent's last exchanges in the run. With a budget, earlier
steps are shown in full, and the agent's exchanges of its loop's last iterations come too; when
that does not fit, ``context_budget`` leaves out the oldest exchanges, then gives the oldest
earlier steps by their summaries: their first sentences, or, with the workflow's summarizer, the
run's summary, a step of its own (``SummaryOrder``) that the step waits for (``Waiting``) and
that every later step following the same steps reads.

Reads the store, changes nothing: the interpreter makes the steps and fails those that cannot fit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from orchestration.context import (
    HISTORY_EXCHANGES,
    EarlierStep,
    Shown,
    compose,
    model_request,
    preamble,
    summary_prompt,
)
from orchestration.context_budget import Fitted, Layout, fit, layouts
from orchestration.guards.provenance import WORKFLOW_INPUT, Provenance, step_source
from orchestration.guards.spotlight import Spotlight
from orchestration.workflow.graph import Graph, kind_of
from orchestration.workflow.kinds.step import Rules
from orchestration.workflow.state import (
    Handoff,
    NodeRunState,
    RunState,
    StepContext,
    StepState,
    frames_of_scope,
    is_summary,
    scope_of,
    summary_node,
)
from orchestration.workflow.store import Store
from storage.errors import ContextTooLarge
from storage.models import StepStatus
from workers.providers.base import ModelRequest, text_of

Earlier = StepState | NodeRunState


@dataclass(frozen=True, slots=True)
class SummaryOrder:
    """The summarizer's step to make: in the frame ``scope`` of the last step it covers, named
    after it (``node``), so that every step that follows those steps finds it."""

    node: str
    scope: str
    agent: str
    prompt: str
    provenance: list[dict[str, Any]]
    covers: int  # how many earlier steps it summarizes


@dataclass(frozen=True, slots=True)
class Waiting:
    """The step waits for the run's summary: ``order`` is the summary step to make, or None
    when it is made and under way. The step is composed again once it is done."""

    order: SummaryOrder | None = None


class Contexts:
    """The contexts of one decision's steps, each composed once: a branch's budget estimate
    and the branch's step read the same one."""

    def __init__(self, run: RunState, graph: Graph, store: Store, rules: Rules) -> None:
        self._run = run
        self._graph = graph
        self._store = store
        self._rules = rules
        self._made: dict[tuple[str, str, str, Handoff, bool], StepContext | Waiting] = {}

    def of(
        self,
        node: str,
        agent: str,
        scope: str,
        given: Handoff,
        lineage: list[Earlier],
        may_wait: bool = True,
    ) -> StepContext | Waiting:
        """The prompt and exchanges of ``node``'s step in ``scope`` for ``agent``, given
        ``given`` after ``lineage``: every piece from outside (the request, earlier outputs,
        what it is given) neutralized and marked as data, with where it came from; fitted to
        the agent's ``context_tokens`` (``ContextTooLarge`` if it cannot be): earlier steps left
        to the run's summary when they no longer fit, ``Waiting`` while it is being written
        (unless not ``may_wait``: then their first sentences stand in)."""
        key = (scope, node, agent, given, may_wait)
        if key not in self._made:
            self._made[key] = self._composed(agent, scope, given, lineage, may_wait)
        return self._made[key]

    def fitted_exchanges(
        self, agent_id: str, prompt: str | None, history: list[list[str]] | None
    ) -> list[list[str]] | None:
        """``history`` with its oldest exchanges left out until ``prompt`` fits ``agent_id``'s
        ``context_tokens`` (``ContextTooLarge`` if it cannot)."""
        agent = self._rules.team.agent(agent_id)
        if agent.context_tokens is None:
            return history
        exchanges = history or []
        fitted = fit(
            agent.id,
            agent.context_tokens,
            layouts(len(exchanges), 0),
            lambda layout: model_request(agent, prompt, exchanges[layout.dropped :], "fit"),
            self._rules.counter,
        )
        return exchanges[fitted.layout.dropped :] or None

    def exchanges(self, agent: str, scope: str, lineage: list[Earlier]) -> list[list[str]]:
        """``agent``'s earlier exchanges (prompt, answer) in what a step of it in ``scope`` after
        ``lineage`` follows: its steps in the lineage and, for an agent with a context budget
        (which leaves out what does not fit), in the earlier iterations of the loop the step is
        in; the last few, oldest first."""
        steps = [e for e in lineage if isinstance(e, StepState) and e.agent == agent]
        budgeted = self._rules.team.agent(agent).context_tokens is not None
        earlier = self._earlier_iterations(scope) if budgeted else []
        if earlier:
            steps += [
                s
                for s in self._store.steps_in(earlier)
                if s.agent == agent and s.status == StepStatus.SUCCEEDED.value
            ]
            steps.sort(key=lambda s: s.position)
        return [[s.prompt or "", s.output or ""] for s in steps[-HISTORY_EXCHANGES:]]

    # -- composing ---------------------------------------------------------------------------------

    def _composed(
        self, agent_id: str, scope: str, given: Handoff, lineage: list[Earlier], may_wait: bool
    ) -> StepContext | Waiting:
        earlier = [e for e in lineage if e.id != given.source]
        older = [as_earlier_step(e) for e in earlier]
        exchanges = self.exchanges(agent_id, scope, lineage)
        spotlight = Spotlight.drawn()
        source = given_source(given, lineage)

        def prompt(shown: list[EarlierStep]) -> str:
            return compose(
                self._run.input, given.label, given.text, shown, spotlight, given_source=source
            )

        agent = self._rules.team.agent(agent_id)
        if agent.context_tokens is None:  # no budget: the first sentences of earlier steps
            return StepContext(prompt(older), exchanges or None)
        limit, counter = agent.context_tokens, self._rules.counter

        def laid_out(layout: Layout, summary: str = "", by_model: bool = False) -> ModelRequest:
            cut: Shown = "summary" if by_model else "extract"
            shown = [
                replace(e, shown=cut if i < layout.summarized else "full")
                for i, e in enumerate(older)
            ]
            history = exchanges[layout.dropped :]
            return model_request(agent, prompt(shown), history, "fit", preamble=summary)

        def context(fitted: Fitted, summary: StepState | None = None) -> StepContext:
            history = exchanges[fitted.layout.dropped :] or None
            text = text_of(fitted.request.messages[-1])
            return StepContext(text, history, fitted.request.preamble or None, summary)

        summarizer = self._graph.summarizer
        if summarizer is None or not may_wait or not older:
            candidates = layouts(len(exchanges), len(older))
            return context(fit(agent.id, limit, candidates, laid_out, counter))
        try:  # the earlier steps in full, as many exchanges as fit
            return context(fit(agent.id, limit, layouts(len(exchanges), 0), laid_out, counter))
        except ContextTooLarge:
            pass
        summaries = self._summaries(earlier)
        done = [(n, s) for n, s in summaries.items() if s.status == StepStatus.SUCCEEDED.value]
        if done:  # the summary covering the most of them, and the rest in full
            covers, summary = max(done, key=lambda found: found[0])
            text = preamble(
                summary.output or "", summary.id, summary.agent, [e.title for e in older[:covers]]
            )
            try:
                fitted = fit(
                    agent.id,
                    limit,
                    layouts(len(exchanges), covers, covers),
                    lambda layout: laid_out(layout, text, by_model=True),
                    counter,
                )
                return context(fitted, summary)
            except ContextTooLarge:
                pass
        # a summary of them all is needed: can the rest fit beside the shortest it could be?
        # (a token is a byte at least: as many bytes as the summarizer's max_tokens)
        bound = preamble(
            "." * self._rules.team.agent(summarizer).max_tokens,
            "bound",
            summarizer,
            [e.title for e in older],
        )
        everything = Layout(len(exchanges), len(older))
        fit(agent.id, limit, [everything], lambda lay: laid_out(lay, bound, by_model=True), counter)
        latest = summaries.get(len(earlier))
        if latest is None:
            return Waiting(self._order(summarizer, earlier, done))
        if latest.status == StepStatus.SUCCEEDED.value:
            raise ContextTooLarge(
                f"{ContextTooLarge.__name__}: the input of a call to agent {agent.id!r} does not "
                f"fit its context_tokens={limit} even with the summary of its earlier steps: "
                "raise the agent's context_tokens, or ask the summarizer for a shorter summary"
            )
        if latest.status == StepStatus.FAILED.value:
            raise ContextTooLarge(
                f"{ContextTooLarge.__name__}: the input of a call to agent {agent.id!r} needed "
                f"the summary of its earlier steps, whose step failed: {latest.error}"
            )
        return Waiting()

    # -- the run's summaries -----------------------------------------------------------------------

    def _summaries(self, earlier: list[Earlier]) -> dict[int, StepState]:
        """The summary steps made of the first ``n`` of ``earlier``, by ``n``."""
        made = {
            (s.scope, s.node): s
            for s in self._store.steps_in(list(dict.fromkeys(e.scope for e in earlier)))
            if is_summary(s.node)
        }
        found = {}
        for n, e in enumerate(earlier, start=1):
            summary = made.get((e.scope, summary_node(e.node or "")))
            if summary is not None:
                found[n] = summary
        return found

    def _order(
        self, summarizer: str, earlier: list[Earlier], done: list[tuple[int, StepState]]
    ) -> SummaryOrder:
        """The summarizer's step for all of ``earlier``: it takes the latest summary made
        (``done``) on with the steps after it."""
        covers, previous = max(done, key=lambda found: found[0]) if done else (0, None)
        prompt = summary_prompt(
            self._run.input,
            [as_earlier_step(e) for e in earlier[covers:]],
            Spotlight.drawn(),
            previous.output if previous is not None else None,
            source_of(previous) if previous is not None else "",
        )
        sources = [WORKFLOW_INPUT, *(source_of(e) for e in earlier[covers:])]
        if previous is not None:
            sources.append(source_of(previous))
        last = earlier[-1]
        return SummaryOrder(
            node=summary_node(last.node or ""),
            scope=last.scope,
            agent=summarizer,
            prompt=prompt,
            provenance=[Provenance(source).to_json() for source in dict.fromkeys(sources)],
            covers=len(earlier),
        )

    def _earlier_iterations(self, scope: str) -> list[str]:
        """The frames of the last few iterations before the one ``scope`` is in, of the
        innermost loop that holds it (none outside a loop)."""
        frames = frames_of_scope(scope)
        for depth in range(len(frames) - 1, -1, -1):
            name, index = frames[depth]
            if kind_of(self._graph.node(name)) == "loop":
                parent = ";".join(f"{n}#{i}" for n, i in frames[:depth])
                first = max(1, index - HISTORY_EXCHANGES)
                return [scope_of(parent, name, i) for i in range(first, index)]
        return []


def as_earlier_step(e: Earlier) -> EarlierStep:
    """A step or node run that finished before, as a prompt shows it."""
    if isinstance(e, StepState):
        return EarlierStep(e.position, e.agent, e.output or "", None, source_of(e))
    return EarlierStep(0, e.node, e.output or "", f"{e.node} ({e.kind})", source_of(e))


def source_of(earlier: Earlier) -> str:
    """Where a step's or a node run's output came from, as a data block says it."""
    if isinstance(earlier, StepState):
        return step_source(earlier.agent, earlier.id)
    return f"{earlier.node} output"


def given_source(given: Handoff, lineage: list[Earlier]) -> str:
    """Where what a step is given came from, as its data block says it."""
    found = next((e for e in lineage if e.id == given.source), None)
    if found is not None:
        return source_of(found)
    return WORKFLOW_INPUT if not given.label else given.label
