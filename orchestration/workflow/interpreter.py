"""The interpreter: what a run of a workflow graph does next, decided one event at a time.

A decision starts from one of three events, inside the transaction that holds the run's lock:

- ``start``: a new run; its first node is entered with the request;
- ``after_step``: a step's attempt was just recorded (it succeeded, or its attempt failed);
- ``advance``: whatever waits (a retry that came due, an attempt the sweep gave up on, the run's
  deadline).

From there it walks the graph. A node that is entered is made: a step row (its prompt composed
now, and dispatched), or a node run whose kind (``kinds/``) says what to start. A node that
finishes hands its output to the next node of its frame; the last node of a frame finishes the
frame, and its node run's kind decides what follows (the next iteration, the next branch, the
join). A node that fails fails its frame, and the kind decides again (fail fast, collect, ...).
The top-level frame finishing or failing ends the run.

Each event touches the states it concerns, through the ``Store``: a step, its frame, its node run
and the few frames its node is nested in. The work of one decision does not grow with the run's
size; only a join reads every frame of its node run, once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

from orchestration.budget import TOKENS_PER_MESSAGE, input_tokens_bound
from orchestration.context import (
    SUMMARY_CHARS_PER_STEP,
    handed_on,
    model_request,
)
from orchestration.guards.detect import Action as FindingAction
from orchestration.guards.provenance import WORKFLOW_INPUT, Provenance
from orchestration.guards.spotlight import Spotlight
from orchestration.workflow import gates
from orchestration.workflow.checks import (
    VERIFY_SHAPE,
    CheckResult,
    RunView,
    parse_output,
    parse_verdict,
    run_check,
    verify_prompt,
)
from orchestration.workflow.contexts import (
    Contexts,
    Earlier,
    SummaryOrder,
    Waiting,
    given_source,
    source_of,
)
from orchestration.workflow.graph import (
    JOIN,
    LEAF_TYPES,
    PASS_THROUGH,
    ApprovalNode,
    CheckNode,
    Graph,
    Node,
    Place,
    StepNode,
    VerifyNode,
    kind_of,
    sequences,
)
from orchestration.workflow.kinds import kind
from orchestration.workflow.kinds.base import (
    Action,
    Begin,
    CallJoin,
    Fail,
    Finish,
    NodeError,
    call_user_function,
)
from orchestration.workflow.kinds.step import (
    CONTEXT_TOO_LARGE,
    INJECTION_SUSPECTED,
    Rules,
    after_failed_attempt,
    dispatch,
    due,
    failure_of,
    refused,
    waits_for_approval,
)
from orchestration.workflow.state import (
    TOP,
    ApprovalState,
    Failure,
    FrameState,
    Handoff,
    NodeRunState,
    Plan,
    RunState,
    StepState,
    describe_scope,
    frames_of_scope,
    is_summary,
    parent_scope,
    scope_of,
)
from orchestration.workflow.store import Store
from storage.errors import (
    ApprovalRejected,
    ApprovalTimedOut,
    ContextTooLarge,
    InjectionSuspected,
    ValidationFailed,
)
from storage.models import FrameStatus, NodeRunStatus, StepStatus, WorkflowStatus, as_utc, new_id


class Interpreter:
    """One decision about one run. Make one per event; it changes the states it is handed (the
    run's, and the store's) and returns the ``Plan``: the messages to route, the log events."""

    def __init__(
        self, run: RunState, graph: Graph, store: Store, rules: Rules, now: datetime
    ) -> None:
        self.run = run
        self.graph = graph
        self.store = store
        self.rules = rules
        self.now = now
        self.plan = Plan()
        self._lineages: dict[tuple[str, str], list[Earlier]] = {}
        self._fresh: set[str] = set()  # frames started by this decision: no step made in them yet
        self._starting = False
        self.contexts = Contexts(run, graph, store, rules)
        self._summary_read: StepState | None = None  # the summary the step just filled reads
        self._gates_changed = False  # an approval was asked for or settled: the run's status

    # -- the events ------------------------------------------------------------------------------

    def start(self) -> Plan:
        """A new run: enter its first node, given the request."""
        self._starting = True  # the steps made now are the first whose prompts hold the request
        self._enter(self.graph.nodes[0], TOP, Handoff("", self.run.input))
        self._waiting_status()
        return self.plan

    def after_step(self, step: StepState) -> Plan:
        """``step``'s attempt was just recorded: decide what follows it."""
        if not self._over():
            self._settle(step)
        self._waiting_status()
        return self.plan

    def advance(self) -> Plan:
        """Decide whatever waits: due retries, attempts given up on, approvals decided or past
        their due time, the deadline."""
        if not self._over():
            for step in self.store.unsettled_steps():
                if WorkflowStatus(self.run.status).finished:
                    break
                self._settle(step)
            self._settle_approvals()
        self._waiting_status()
        return self.plan

    # -- steps -----------------------------------------------------------------------------------

    def _settle(self, step: StepState) -> None:
        if is_summary(step.node):
            self._settle_summary(step)
            return
        if step.status == StepStatus.ATTEMPT_FAILED.value:
            agent = step.agent
            after_failed_attempt(step, self.now, self.rules, self.plan)
            self.store.changed(step)
            if waits_for_approval(step):
                self._ask_tool_approvals(step)
                return
            if step.agent != agent and not self._refilled(step):
                return  # a fallback took over, but its input cannot fit: the step failed
        if step.status == StepStatus.PENDING.value:
            if waits_for_approval(step):
                return  # until a person decides (``_settle_approvals``)
            if step.attempt == 0:
                self._resume(step)
            elif due(step, self.now):
                self._dispatch(step)
                self.store.changed(step)
        elif step.status == StepStatus.SUCCEEDED.value:
            node = self.graph.place(_node_of(step)).node
            if isinstance(node, VerifyNode):
                self._verdict(node, step)
            elif self._accepted(step):
                self._node_done(_node_of(step), step.scope, step.output or "", step.id, step.agent)
        elif step.status == StepStatus.FAILED.value:
            self._node_failed(_node_of(step), step.scope, failure_of(step))

    def _dispatch(self, step: StepState) -> None:
        dispatch(
            self.run,
            step,
            self.now,
            self.rules,
            self.plan,
            self.graph.tool_approvals.untrusted_side_effects,
        )

    # -- checks ----------------------------------------------------------------------------------

    def _accepted(self, step: StepState) -> bool:
        """Whether ``step``'s answer passes its agent's output schema and its node's checks
        (each verdict kept on the step). A refused answer is asked for again, or the step
        fails: either way, the node is not done."""
        place = self.graph.place(_node_of(step))
        node = place.node
        checks = node.checks if isinstance(node, StepNode) else ()
        schema = self.rules.team.agent(step.agent).output_schema
        if not checks and schema is None:
            return True
        output = step.output or ""
        results: list[CheckResult] = []
        try:
            if schema is not None:
                result, step.data = parse_output(schema, output, step.attempt)
                results.append(result)
            if all(r.ok for r in results) and checks:
                view = self._run_view(step.scope, place)
                for function in checks:
                    results.append(run_check(function, node.name, output, view, step.attempt))
                    if not results[-1].ok:
                        break
        except NodeError as error:
            step.status, step.error_kind, step.error = StepStatus.FAILED.value, "error", str(error)
            step.finished_at = self.now
            self._keep_verdicts(step, results)
            self._node_failed(node.name, step.scope, Failure("error", str(error)))
            return False
        self._keep_verdicts(step, results)
        refused = next((r for r in results if not r.ok), None)
        if refused is None:
            return True
        self._refused(step, refused, node.max_reasks if isinstance(node, StepNode) else 1)
        return False

    def _refused(self, step: StepState, result: CheckResult, max_reasks: int) -> None:
        """Ask again for a refused answer (or fail the step, and with it its node)."""
        self._event("check.refused", step_id=step.id, check=result.name, reason=result.reason)
        if refused(step, result, max_reasks, self.now, self.rules, self.plan):
            if self._within_budget(step):
                self._dispatch(step)
        else:
            self._node_failed(_node_of(step), step.scope, failure_of(step))
        self.store.changed(step)

    def _keep_verdicts(self, step: StepState, results: list[CheckResult]) -> None:
        if results:
            step.checks = [*(step.checks or []), *(r.to_json() for r in results)]
            self.store.changed(step)

    def _check(self, node: CheckNode, scope: str, given: Handoff) -> None:
        """A checkpoint: the output it is given goes on if its check accepts it; a refused
        output of the step just before it is asked for again, and anything else fails."""
        place = self.graph.place(node.name)
        lineage = self._lineage(scope, place)
        source = _step_in(lineage, given.source)
        try:
            result = run_check(
                node.check,
                node.name,
                given.text,
                self._run_view(scope, place),
                source.attempt if source is not None else 0,
            )
        except NodeError as error:
            self._frame_failed(scope, Failure("error", str(error)))
            return
        refuser = f"the check {result.name}"
        self._judged(node, scope, result, source, given.text, given.source or "", refuser)

    def _verify(self, node: VerifyNode, scope: str, given: Handoff) -> None:
        """A checkpoint an agent keeps: its step is asked to judge ``given`` against the run's
        facts (or input). Entered again after the step before it answered again, the same step
        is asked again, about the new answer."""
        truth = list(self.store.facts()) if node.against == "facts" else [self.run.input]
        label = "Facts" if node.against == "facts" else "The request, as given"
        spotlight = Spotlight.drawn()
        prompt = verify_prompt(
            spotlight.data(self.run.input, WORKFLOW_INPUT),
            label,
            [spotlight.data(item, label.lower()) for item in truth],
            given.label or "Text to check",
            spotlight.data(given.text, given.source or "the text to check"),
        )
        step = self._step_for(node.name, node.agent, scope)
        lineage = self._lineage(scope, self.graph.place(node.name))
        step.parent_step_id = given.source if _step_in(lineage, given.source) else None
        step.prompt, step.history = f"{spotlight.note}\n\n{prompt}", None
        step.output = step.error = step.error_kind = step.finished_at = None
        step.status = StepStatus.PENDING.value
        if self._within_budget(step):
            self._send(step, [(given.text, given_source(given, lineage))])

    def _verdict(self, node: VerifyNode, verifier: StepState) -> None:
        """The verifier answered: the text it judged goes on, or is asked for again (or, with
        no step before it to ask, or an answer that is not a verdict, the run fails)."""
        scope = verifier.scope
        place = self.graph.place(node.name)
        source = _step_in(self._lineage(scope, place), verifier.parent_step_id)
        before = source or self._given_to(place, scope)
        verdict = parse_verdict(verifier.output or "")
        if verdict is None:
            self._frame_failed(
                scope,
                Failure(
                    "error",
                    f"{ValidationFailed.__name__}: {node.name}: its verifier ({verifier.agent}) "
                    f"did not answer the verdict's shape {VERIFY_SHAPE}",
                ),
            )
            return
        name = f"verify by {verifier.agent}"
        attempt = source.attempt if source is not None else verifier.attempt
        result = CheckResult(name, verdict.ok, verdict.reason, attempt)
        self._keep_verdicts(verifier, [result])
        text = (before.output if before is not None else self._frame_input(scope)) or ""
        given_source = verifier.parent_step_id or ""
        self._judged(node, scope, result, source, text, given_source, verifier.agent)

    def _judged(
        self,
        node: CheckNode | VerifyNode,
        scope: str,
        result: CheckResult,
        source: StepState | None,
        text: str,
        given_source: str,
        refuser: str,
    ) -> None:
        """A checkpoint's verdict on ``text``, the output of ``source`` (if a step's): accepted,
        it goes on; refused, the step is asked again if it is the one just before the checkpoint
        in its frame; anything else (a frame's input, a join's output) fails the frame."""
        if source is not None:
            self._keep_verdicts(source, [result])
        if result.ok:
            by = source.agent if source is not None else node.name
            self._node_done(node.name, scope, text, given_source, by)
        elif source is not None and source.scope == scope:
            self._refused(source, result, node.max_reasks)
        else:
            self._frame_failed(
                scope,
                Failure(
                    "error",
                    f"{ValidationFailed.__name__}: {node.name}: {refuser} refused what it was "
                    f"given: {result.reason}",
                ),
            )

    def _given_to(self, place: Place, scope: str) -> Earlier | None:
        """What made the output ``place``'s node was given: the node before it in its frame,
        past any checkpoints (they pass what they accept on); None for the frame's input."""
        for node in reversed(place.sequence[: place.index]):
            if not isinstance(node, CheckNode | VerifyNode | ApprovalNode):
                return self._state_of(node, scope)
        return None

    def _frame_input(self, scope: str) -> str:
        return self.run.input if scope == TOP else self.store.frame(scope).input

    def _run_view(self, scope: str, place: Place) -> RunView:
        """The run as a check at ``place`` sees it: the input, what finished before, the facts."""
        lineage = self._lineage(scope, place)
        return RunView(
            input=self.run.input,
            outputs=MappingProxyType({e.node or "": e.output or "" for e in lineage}),
            facts=tuple(self.store.facts()),
        )

    def _resume(self, step: StepState) -> None:
        """A step made but never sent (a version before graphs made every step at submit, and
        a decision that made one may have been lost): sent once its node is ready, the node
        before it in its frame done."""
        place = self.graph.place(_node_of(step))
        if not isinstance(place.node, StepNode):
            return
        given = self._given_for(step, place)
        if given is not None:
            self._make_step(place.node, step.scope, given)

    def _given_for(self, step: StepState, place: Place) -> Handoff | None:
        """What ``step``, of the step node at ``place``, is given: its frame's input, or the
        output of the node before it (None: that node has not finished, or the step is a
        join's, whose input its node run alone can say)."""
        if place.join_of is not None:
            return None
        if place.index == 0:
            if step.scope == TOP:
                return Handoff("", self.run.input)
            return _given(self.store.frame(step.scope))
        before = self._state_of(place.sequence[place.index - 1], step.scope)
        if before is None or before.status != StepStatus.SUCCEEDED.value:
            return None
        by = before.agent if isinstance(before, StepState) else before.node
        return Handoff(handed_on(by), before.output or "", before.id)

    def _state_of(self, node: Node, scope: str) -> Earlier | None:
        if isinstance(node, StepNode):
            return self._existing_step(scope, node.name)
        return next(
            (run for run in self.store.node_runs_in([scope]) if run.node == node.name), None
        )

    def _make_step(self, node: StepNode, scope: str, given: Handoff) -> None:
        """Make ``node``'s step in the frame ``scope`` and dispatch its first attempt."""
        place = self.graph.place(node.name)
        lineage = self._lineage(scope, place)
        step = self._existing_step(scope, node.name)
        if step is not None and (step.status != StepStatus.PENDING.value or step.attempt > 0):
            self._event("step.exists", node=node.name, scope=scope, step_id=step.id)
            return
        # a step found here was made at submit, by a version that made every step then: it is
        # the one to send; else a new one is made
        step = self._step_for(node.name, node.agent, scope)
        step.parent_step_id = given.source if _step_in(lineage, given.source) else None
        source = given_source(given, lineage)
        self._summary_read = None
        if not self._filled(step, given, lineage):
            return
        step.provenance = self._provenance(step, given, lineage, source)
        pieces = [(given.text, source)]
        summary = self._summary_read
        if summary is not None:  # what the summarizer wrote, new to a prompt
            step.provenance.append(Provenance(source_of(summary)).to_json())
            pieces.append((summary.output or "", source_of(summary)))
        if self._starting and given.label:  # the request is in its prompt too, for the first time
            pieces.append((self.run.input, WORKFLOW_INPUT))
        self._send(step, pieces)

    def _step_for(self, node: str, agent: str, scope: str) -> StepState:
        """The step of ``node`` in the frame ``scope``: the one made already, or a new one."""
        step = self._existing_step(scope, node)
        if step is not None:
            self.store.changed(step)
            return step
        iteration, branch = self._coordinates(scope)
        step = StepState(
            id=new_id(),
            position=self.store.next_position(),
            agent_id=agent,
            node=node,
            iteration=iteration,
            branch=branch,
            scope=scope,
        )
        self.store.add(step)
        return step

    def _send(self, step: StepState, pieces: list[tuple[str, str]]) -> None:
        """Dispatch ``step``'s next attempt, unless the text new to its prompt (``pieces``) is
        suspect and the workflow quarantines it: then the step, and its node, fail."""
        if self._scanned(step, pieces):
            self._dispatch(step)
        else:
            self._node_failed(_node_of(step), step.scope, failure_of(step))

    def _provenance(
        self, step: StepState, given: Handoff, lineage: list[Earlier], source: str
    ) -> list[dict[str, Any]]:
        """Where each piece of ``step``'s prompt from outside came from: the request, the
        earlier outputs and what it is given, untrusted (from outside, or derived from what
        was). Its agent's system prompt, trusted, goes without saying."""
        pieces: list[Provenance] = []
        if given.label:
            pieces.append(Provenance(WORKFLOW_INPUT))
            pieces += [Provenance(source_of(e)) for e in lineage if e.id != given.source]
        pieces.append(Provenance(source))
        return [piece.to_json() for piece in dict.fromkeys(pieces)]

    def _scanned(self, step: StepState, pieces: list[tuple[str, str]]) -> bool:
        """Look for injection attempts in the ``pieces`` (text, where it came from) new to
        ``step``'s prompt, and keep what is found on the step. False: the workflow quarantines
        what is suspect, and the step was failed instead of run."""
        classifier = self.rules.classifier
        found = [f for text, source in pieces for f in classifier.findings(text, source)]
        if not found:
            return True
        quarantine = self.graph.on_injection == "quarantine"
        action: FindingAction = "quarantine" if quarantine else "flag"
        step.findings = [
            *(step.findings or []),
            *(replace(f, action=action).to_json() for f in found),
        ]
        self.store.changed(step)
        self._event(
            "injection.suspected",
            step_id=step.id,
            kinds=sorted({f.kind for f in found}),
            action=action,
        )
        if not quarantine:
            return True
        worst = max(found, key=lambda f: f.score)
        step.status = StepStatus.FAILED.value
        step.error_kind = INJECTION_SUSPECTED
        step.error = (
            f"{InjectionSuspected.__name__}: {worst.kind} suspected in {worst.source} (score "
            f"{worst.score:.2f}: {worst.evidence!r}); the step was not run, and none of that text "
            "reached its agent"
        )
        step.finished_at = self.now
        return False

    def _filled(
        self, step: StepState, given: Handoff, lineage: list[Earlier], may_wait: bool = True
    ) -> bool:
        """Compose ``step``'s prompt and history for its current agent, given ``given`` after
        ``lineage``. False: they cannot fit the agent's ``context_tokens`` (the step, with its
        node, failed before any call), or the step waits for the run's summary."""
        try:
            context = self.contexts.of(
                _node_of(step), step.agent, step.scope, given, lineage, may_wait
            )
        except ContextTooLarge as error:
            self._fail_before_call(step, CONTEXT_TOO_LARGE, str(error))
            return False
        if isinstance(context, Waiting):  # for the run's summary: made again once it is done
            if context.order is not None:
                self._summarize(context.order)
            self.store.changed(step)
            return False
        step.prompt, step.history, step.preamble = context.prompt, context.history, context.preamble
        if context.summary is not None:
            self._summary_read = context.summary
        return True

    def _refilled(self, step: StepState) -> bool:
        """A fallback took ``step`` over: it reads the same prompt, after its own exchanges,
        fitted to its own context budget (the prompt composed again for it when it does not
        fit as it is). False: it cannot fit, and the step failed."""
        place = self.graph.place(_node_of(step))
        if isinstance(place.node, StepNode):
            lineage = self._lineage(step.scope, place)
            exchanges = self.contexts.exchanges(step.agent, step.scope, lineage) or None
            given = self._given_for(step, place)
            try:
                step.history = self.contexts.fitted_exchanges(step.agent, step.prompt, exchanges)
            except ContextTooLarge:
                if given is not None:  # composed again, for it
                    step.history = exchanges
                    return self._filled(step, given, lineage, may_wait=False)
        return self._within_budget(step)

    def _within_budget(self, step: StepState) -> bool:
        """Leave out ``step``'s oldest exchanges until its prompt fits its agent's
        ``context_tokens`` (a re-ask's, a verifier's). False: it cannot fit, and the step
        (with its node) failed before any call."""
        try:
            step.history = self.contexts.fitted_exchanges(step.agent, step.prompt, step.history)
        except ContextTooLarge as error:
            self._fail_before_call(step, CONTEXT_TOO_LARGE, str(error))
            return False
        return True

    def _fail_before_call(self, step: StepState, kind: str, error: str) -> None:
        step.status = StepStatus.FAILED.value
        step.error_kind, step.error = kind, error
        step.finished_at = self.now
        self.store.changed(step)
        if is_summary(step.node):
            self._settle_summary(step)
        else:
            self._node_failed(_node_of(step), step.scope, failure_of(step))

    def _summarize(self, order: SummaryOrder) -> None:
        """Make and send the summarizer's step ``order`` says (once: a decision may find it
        wanted twice)."""
        if self._existing_step(order.scope, order.node) is not None:
            return
        step = self._step_for(order.node, order.agent, order.scope)
        step.prompt, step.history, step.provenance = order.prompt, None, order.provenance
        self._event("summary.started", step_id=step.id, covers=order.covers, agent=order.agent)
        if self._within_budget(step):
            self._dispatch(step)

    def _settle_summary(self, step: StepState) -> None:
        """A summary step's attempt was recorded: retried, handed to a fallback, or (done, or
        failed for good) the steps that waited for it are made again (with it, or failing)."""
        if step.status == StepStatus.ATTEMPT_FAILED.value:
            after_failed_attempt(step, self.now, self.rules, self.plan)
            self.store.changed(step)
            if waits_for_approval(step):  # a summarizer with tools that need approval
                self._ask_tool_approvals(step)
                return
        if waits_for_approval(step):
            return
        if step.status == StepStatus.PENDING.value and due(step, self.now):
            self._dispatch(step)
            self.store.changed(step)
        elif step.status in (StepStatus.SUCCEEDED.value, StepStatus.FAILED.value):
            self._event("summary.finished", step_id=step.id, status=step.status)
            for waiting in self.store.unsettled_steps():
                if WorkflowStatus(self.run.status).finished:
                    return
                made = waiting.status == StepStatus.PENDING.value and waiting.attempt == 0
                if made and not is_summary(waiting.node):
                    self._resume(waiting)

    def _existing_step(self, scope: str, node: str) -> StepState | None:
        if scope in self._fresh:
            return None
        for step in self.store.steps_in([scope]):
            if step.node == node:
                return step
        return None

    # -- approval gates ----------------------------------------------------------------------------

    def _gate(self, node: ApprovalNode, scope: str, given: Handoff) -> None:
        """A gate: ``given`` waits for a person's approval (the run holds no worker while it
        waits), unless this very text was approved at this gate before: then it passes on."""
        hashed = gates.subject_hash(gates.GATE, node.gate, given.text)
        kept = self.store.approval(scope, node.name)
        if kept is not None and kept.subject_hash == hashed:
            if kept.waiting:
                return  # asked for already: this decision has nothing to add
            if gates.outcome(kept) == "approve":
                self._approved(node, kept)
                return
        approval = gates.ask(node, scope, given.text, hashed, given.source, self.now, kept)
        if kept is None:
            self.store.add(approval)
        else:
            self.store.changed(approval)
        self._requested(approval)

    def _requested(self, approval: ApprovalState) -> None:
        """``approval`` was just asked for: on the audit trail, to the webhook, and the run
        waits for it."""
        request = gates.request_message(self.run, approval)
        approval.request_id = request.id
        self.plan.audit.append((request, None))
        self.plan.requested.append(approval)
        self._gates_changed = True
        self._event(
            "approval.requested",
            gate=approval.gate,
            kind=approval.kind,
            node=approval.node,
            scope=approval.scope,
            subject_hash=approval.subject_hash,
            request=approval.requests,
        )

    def _settle_approvals(self) -> None:
        """Go on from the approvals a person decided, and apply the timeout of those nobody
        decided in time (a run that can ask for none asks nothing)."""
        if not self._asks_approvals():
            return
        for approval in self.store.settleable_approvals(self.now):
            if WorkflowStatus(self.run.status).finished:
                return
            outcome = self._decided(approval)
            if approval.kind == gates.GATE:
                self._settle_gate(approval, outcome)
            else:
                self._settle_tool_call(approval, outcome)

    def _asks_approvals(self) -> bool:
        """Whether a run of this graph may wait for a person: it has a gate, or an agent of its
        (or a fallback of one) has a tool whose calls may need approval."""
        if self.graph.gates:
            return True
        team, policy = self.rules.team, self.graph.tool_approvals
        return any(
            spec.needs_approval or (policy.untrusted_side_effects and spec.side_effects)
            for agent in self.graph.agents()
            for agent_id in team.fallback_chain(agent)
            for spec in team.agent(agent_id).tool_specs
        )

    def _decided(self, approval: ApprovalState) -> str:
        """Apply the decision on ``approval`` (its timeout's, if nobody decided in time) and say
        what the run does with it: ``approve``, ``reject`` or ``fail``."""
        if approval.waiting:  # past its due time
            gates.timed_out(approval, self.now)
            message = gates.decision_message(self.run.id, self.run.priority, approval, self.now)
            self.plan.audit.append((message, self.now))
        approval.applied_at = self.now
        self.store.changed(approval)
        self._gates_changed = True
        outcome = gates.outcome(approval)
        self._event(
            "approval.settled",
            gate=approval.gate,
            kind=approval.kind,
            scope=approval.scope,
            status=approval.status,
            outcome=outcome,
            by=approval.decided_by,
        )
        return outcome

    def _settle_gate(self, approval: ApprovalState, outcome: str) -> None:
        node = self.graph.node(approval.node)
        assert isinstance(node, ApprovalNode), f"{approval.node} is not a gate of the graph"
        where = f" in {describe_scope(approval.scope)}" if approval.scope else ""
        waited = f"{node.timeout_s or 0:g}s"  # read only when it timed out, so it had one
        if outcome == "approve":
            self._approved(node, approval)
        elif outcome == "reject":
            why = (
                f"was rejected by {approval.decided_by}"
                + (f": {approval.note}" if approval.note else "")
                if approval.decided_by is not None
                else f"was not decided within {waited}, and its on_timeout is 'reject'"
            )
            # What was rejected is not the run's output; its steps keep theirs.
            self._finish(
                WorkflowStatus.REJECTED,
                None,
                f"{ApprovalRejected.__name__}: gate {node.gate!r}{where} {why}",
            )
        else:
            self._frame_failed(
                approval.scope,
                Failure(
                    "error",
                    f"{ApprovalTimedOut.__name__}: gate {node.gate!r}{where} was not decided "
                    f"within {waited} (its on_timeout is 'fail'); give approval(...) a longer "
                    "timeout_s, or decide sooner",
                ),
            )

    def _ask_tool_approvals(self, step: StepState) -> None:
        """``step``'s attempt stopped at a tool call that waits for a person (on the tool
        ledger): ask for their approval of it, bound to its exact arguments. A call decided
        already (an attempt that read the approval before it was decided) sends the step on."""
        awaiting = self.store.tool_calls_awaiting_approval(step.id)
        if not awaiting:
            self._step_failed(
                step,
                "error",
                "its attempt stopped for an approval of a tool call that is not on the tool "
                "ledger; run the workflow again",
            )
            return
        decided = False
        for call in awaiting:
            node = gates.tool_node(step.id, call.turn, call.index)
            kept = self.store.approval(step.scope, node)
            if kept is not None:
                decided = decided or not kept.waiting
                continue
            approval = gates.ask_tool(
                self.graph.tool_approvals, step.scope, step.id, call, self.now
            )
            self.store.add(approval)
            self._requested(approval)
        if decided:
            self._go_on_after_approval(step)

    def _settle_tool_call(self, approval: ApprovalState, outcome: str) -> None:
        """A person decided on a tool call (or nobody did in time): another attempt of its step
        runs it, or tells the model it was refused; ``fail`` fails the step."""
        step = next(
            (s for s in self.store.steps_in([approval.scope]) if s.id == approval.source_id), None
        )
        if step is None or not waits_for_approval(step):
            return  # the step went on without it (its run was cancelled and resumed, say)
        if outcome == "fail":
            waited = (
                f"{self.graph.tool_approvals.timeout_s:g}s"
                if self.graph.tool_approvals.timeout_s is not None
                else "its run's deadline"
            )
            self._step_failed(
                step,
                ApprovalTimedOut.kind,
                f"{ApprovalTimedOut.__name__}: the call of tool {approval.gate!r} with "
                f"{approval.subject} was not decided within {waited} (the workflow's "
                "tool_approval_on_timeout is 'fail'); give it a longer tool_approval_timeout_s, "
                "or decide sooner",
            )
            return
        self._go_on_after_approval(step)

    def _go_on_after_approval(self, step: StepState) -> None:
        """The step's next attempt: it reads the decision where its tool call waits."""
        step.error_kind = step.error = None
        self._dispatch(step)
        self.store.changed(step)

    def _step_failed(self, step: StepState, kind: str, error: str) -> None:
        step.status, step.error_kind, step.error = StepStatus.FAILED.value, kind, error
        step.finished_at = self.now
        self.store.changed(step)
        self._node_failed(_node_of(step), step.scope, failure_of(step))

    def _approved(self, node: ApprovalNode, approval: ApprovalState) -> None:
        """The gate passes on exactly the text that was approved."""
        place = self.graph.place(node.name)
        lineage = self._lineage(approval.scope, place)
        source = next((e for e in lineage if e.id == approval.source_id), None)
        by = node.name
        if isinstance(source, StepState):
            by = source.agent
        elif isinstance(source, NodeRunState):
            by = source.node
        self._node_done(node.name, approval.scope, approval.subject, approval.source_id or "", by)

    def _waiting_status(self) -> None:
        """While an approval waits the run is ``waiting_approval``; once none does, it runs."""
        if not self._gates_changed or WorkflowStatus(self.run.status).finished:
            return
        if self.store.approvals_waiting():
            status = WorkflowStatus.WAITING_APPROVAL.value
        elif self.run.status == WorkflowStatus.WAITING_APPROVAL.value:
            status = WorkflowStatus.RUNNING.value
        else:
            return
        if status != self.run.status:
            self.run.status = status
            self.plan.run_changed = True

    # -- nodes and frames --------------------------------------------------------------------------

    def _enter(self, node: Node, scope: str, given: Handoff) -> None:
        if isinstance(node, StepNode):
            self._make_step(node, scope, given)
            return
        if isinstance(node, CheckNode):
            self._check(node, scope, given)
            return
        if isinstance(node, VerifyNode):
            self._verify(node, scope, given)
            return
        if isinstance(node, ApprovalNode):
            self._gate(node, scope, given)
            return
        node_run = NodeRunState(
            id=new_id(),
            node=node.name,
            scope=scope,
            kind=kind_of(node),
            input=given.text,
            input_label=given.label,
            input_source=given.source,
            started_at=self.now,
        )
        self.store.add(node_run)
        self._event("node.started", node=node.name, kind=node_run.kind, scope=scope)
        self._follow(node_run, lambda context: kind(node_run.kind).start(context))

    def _node_done(self, name: str, scope: str, output: str, source: str, by: str) -> None:
        """The node ``name`` finished in the frame ``scope`` with ``output`` (from ``source``, a
        step or node run, run by ``by``)."""
        place = self.graph.place(name)
        if place.join_of is not None:
            node_run = self.store.node_run(scope, place.join_of.name)
            self._node_run_done(node_run, output, source)
            return
        if scope != TOP and place.index == 0:
            frame = self.store.frame(scope)
            frame.first_output = output
            self.store.changed(frame)
        if place.last:
            self._frame_done(scope, output, source)
        else:
            given = Handoff(handed_on(by), output, source)
            self._enter(place.next, scope, given)

    def _node_failed(self, name: str, scope: str, failure: Failure) -> None:
        place = self.graph.place(name)
        if place.join_of is not None:
            node_run = self.store.node_run(scope, place.join_of.name)
            if node_run.running:
                self._node_run_failed(
                    node_run,
                    Failure(failure.kind, f"{node_run.node}, its join: {failure.message}"),
                )
            return
        self._frame_failed(scope, failure)

    def _frame_done(self, scope: str, output: str, source: str) -> None:
        if scope == TOP:
            self._succeed(output)
            return
        frame = self.store.frame(scope)
        frame.status = FrameStatus.SUCCEEDED.value
        frame.output = output
        frame.finished_at = self.now
        self.store.changed(frame)
        node_run = self._owner(scope)
        if node_run.running:
            self._follow(node_run, lambda context: kind(node_run.kind).frame_done(context, frame))

    def _frame_failed(self, scope: str, failure: Failure) -> None:
        if scope == TOP:
            self._end(failure)
            return
        frame = self.store.frame(scope)
        frame.status = FrameStatus.FAILED.value
        frame.error = failure.message
        frame.error_kind = failure.kind
        frame.finished_at = self.now
        self.store.changed(frame)
        node_run = self._owner(scope)
        if node_run.running:  # else it failed already (fail fast): this frame changes nothing
            self._follow(
                node_run, lambda context: kind(node_run.kind).frame_failed(context, frame, failure)
            )

    def _owner(self, scope: str) -> NodeRunState:
        """The node run that ran the frame ``scope``."""
        node, _ = frames_of_scope(scope)[-1]
        return self.store.node_run(parent_scope(scope), node)

    def _follow(
        self, node_run: NodeRunState, decide: Callable[[_NodeContext], list[Action]]
    ) -> None:
        """Ask ``node_run``'s kind (through ``decide``) and carry out its answer."""
        node = self.graph.node(node_run.node)
        context = _NodeContext(self, node_run, node)
        try:
            actions = decide(context)
        except NodeError as error:
            actions = [Fail(Failure("error", str(error)))]
        self.store.changed(node_run)
        for action in actions:
            if WorkflowStatus(self.run.status).finished:
                return
            if isinstance(action, Begin):
                frame = action.frame
                frame.status = FrameStatus.RUNNING.value
                frame.started_at = self.now
                self.store.changed(frame)
                self._fresh.add(frame.scope)
                first = kind(node_run.kind).sequence(node, frame.index)[0]
                self._enter(first, frame.scope, _given(frame))
            elif isinstance(action, Finish):
                self._node_run_done(node_run, action.output, node_run.id)
            elif isinstance(action, Fail):
                self._node_run_failed(node_run, action.failure)
            elif isinstance(action, CallJoin):
                join = self.graph.place(node_run.node + JOIN).node
                assert isinstance(join, StepNode)
                self._make_step(join, node_run.scope, action.given)

    def _node_run_done(self, node_run: NodeRunState, output: str, source: str) -> None:
        node_run.status = NodeRunStatus.SUCCEEDED.value
        node_run.output = output
        node_run.finished_at = self.now
        self.store.changed(node_run)
        self._event("node.finished", node=node_run.node, scope=node_run.scope)
        self._node_done(node_run.node, node_run.scope, output, source, node_run.node)

    def _node_run_failed(self, node_run: NodeRunState, failure: Failure) -> None:
        node_run.status = NodeRunStatus.FAILED.value
        node_run.error = failure.message
        node_run.error_kind = failure.kind
        node_run.output = failure.output
        node_run.finished_at = self.now
        self.store.changed(node_run)
        self._event("node.failed", node=node_run.node, scope=node_run.scope, error=failure.message)
        self._frame_failed(node_run.scope, failure)

    # -- what a node is given and sees -------------------------------------------------------------

    def _lineage_of(self, step: StepState) -> list[Earlier]:
        return self._lineage(step.scope, self.graph.place(_node_of(step)))

    def _lineage(self, scope: str, place: Place) -> list[Earlier]:
        """The nodes that finished before ``place``'s node in its frame and in every frame that
        holds it, outermost first: what its prompt summarizes. Not its siblings in other
        branches, nor earlier iterations of its loop."""
        if place.join_of is not None:  # a join sees what its node sees
            place = self.graph.place(place.join_of.name)
        key = (scope, place.node.name)
        if key in self._lineages:
            return self._lineages[key]
        chain: list[tuple[str, tuple[Node, ...]]] = []
        at_scope, at = scope, place
        while True:
            chain.append((at_scope, at.sequence[: at.index]))
            if at_scope == TOP:
                break
            owner, _ = frames_of_scope(at_scope)[-1]
            at_scope, at = parent_scope(at_scope), self.graph.place(owner)
        chain.reverse()
        scopes = [s for s, nodes in chain if nodes]
        steps: dict[tuple[str, str | None], StepState] = {}
        runs: dict[tuple[str, str], NodeRunState] = {}
        if scopes:
            steps = {(s.scope, s.node): s for s in self.store.steps_in(scopes)}
            if any(not isinstance(n, LEAF_TYPES) for _, nodes in chain for n in nodes):
                runs = {(r.scope, r.node): r for r in self.store.node_runs_in(scopes)}
        lineage: list[Earlier] = []
        for at_scope, nodes in chain:
            for node in nodes:
                found: Earlier | None = (
                    steps.get((at_scope, node.name))
                    if isinstance(node, StepNode)
                    else runs.get((at_scope, node.name))
                )
                if found is not None and found.status == StepStatus.SUCCEEDED.value:
                    lineage.append(found)
        self._lineages[key] = lineage
        return lineage

    def _coordinates(self, scope: str) -> tuple[int | None, int | None]:
        """A step's iteration (its innermost loop's) and branch (its innermost fan-out's or
        parallel's) in the frame ``scope``."""
        iteration = branch = None
        for name, index in frames_of_scope(scope):
            node_kind = kind_of(self.graph.node(name))
            if node_kind == "loop":
                iteration = index
            elif node_kind in ("fan_out", "parallel"):
                branch = index
        return iteration, branch

    def worst_case_micro(self, owner: Node, frame: FrameState) -> int:
        """The most one pass through ``frame``'s nodes can cost: its first call's worst case
        exactly (its prompt composed as it would be), each later call's from its agent's
        ``max_tokens`` and the previous one's (a nested loop or fan-out counted once)."""
        steps = _first_pass(kind(kind_of(owner)).sequence(owner, frame.index))
        if not steps:
            return 0
        team = self.rules.team
        first = team.agent(steps[0].agent)
        lineage = self._lineage(frame.scope, self.graph.place(steps[0].name))
        given = _given(frame)
        try:
            context = self.contexts.of(steps[0].name, first.id, frame.scope, given, lineage)
        except ContextTooLarge:  # its step will fail before any call: it costs nothing
            return 0
        if isinstance(context, Waiting):  # for the run's summary, then it fits its budget
            input_tokens = first.context_tokens or 0
        else:
            input_tokens = input_tokens_bound(
                model_request(first, context.prompt, context.history, "estimate", context.preamble)
            )
        total = team.prices.worst_case_micro(first.model, input_tokens, first.max_tokens)
        fixed = len(self.run.input.encode()) + SUMMARY_CHARS_PER_STEP * (len(lineage) + 1)
        previous = first.max_tokens
        for node in steps[1:]:
            agent = team.agent(node.agent)
            tokens = len(agent.system_prompt.encode()) + fixed + previous + 3 * TOKENS_PER_MESSAGE
            total += team.prices.worst_case_micro(agent.model, tokens, agent.max_tokens)
            previous = agent.max_tokens
        return total

    # -- the run -----------------------------------------------------------------------------------

    def _over(self) -> bool:
        """Whether the run is finished, or its deadline has just ended it."""
        if WorkflowStatus(self.run.status).finished:
            return True
        deadline = self.run.deadline_at
        if deadline is not None and self.now >= as_utc(deadline):
            self._time_out()
            return True
        return False

    def _succeed(self, output: str) -> None:
        self._finish(WorkflowStatus.SUCCEEDED, output, None)

    def _end(self, failure: Failure) -> None:
        """The top-level frame failed: the run ends, keeping what it can of what was done."""
        if failure.kind == "budget":
            output = failure.output if failure.output is not None else self.store.last_output()
            self._finish(WorkflowStatus.BUDGET_EXCEEDED, output, failure.message)
        else:
            self._finish(WorkflowStatus.FAILED, failure.output, failure.message)

    def _time_out(self) -> None:
        """The run's deadline passed: it ends now, keeping what its finished steps produced. A
        call still under way is recorded when it returns; nothing follows it."""
        done = self.store.steps_done()
        of = f" of {len(self.graph.nodes)}" if self.graph.is_sequence else ""
        self._finish(
            WorkflowStatus.TIMED_OUT,
            self.store.last_output(),
            f"the run's deadline passed with {done}{of} step(s) done; give the workflow a "
            "longer deadline_s or make its agents faster",
        )

    def _finish(self, status: WorkflowStatus, output: str | None, error: str | None) -> None:
        self.run.status = status.value
        self.run.output = output
        self.run.error = error
        self.run.finished_at = self.now
        self.plan.run_changed = True

    def _event(self, name: str, **fields: object) -> None:
        self.plan.events.append((name, {"workflow_id": self.run.id, **fields}))


class _NodeContext:
    """What a kind is handed (``kinds.base.NodeContext``), for one node run."""

    def __init__(self, interpreter: Interpreter, run: NodeRunState, node: Node) -> None:
        self._interpreter = interpreter
        self._run = run
        self._node = node
        self._opened: dict[int, FrameState] = {}

    @property
    def node(self) -> Any:
        return self._node

    @property
    def run(self) -> NodeRunState:
        return self._run

    @property
    def now(self) -> datetime:
        return self._interpreter.now

    @property
    def remaining_micro(self) -> int | None:
        return self._interpreter.run.remaining_micro()

    def open(self, index: int, given: Handoff) -> FrameState:
        frame = FrameState(
            id=new_id(),
            node_run_id=self._run.id,
            index=index,
            scope=scope_of(self._run.scope, self._run.node, index),
            input=given.text,
            input_label=given.label,
            input_source=given.source,
        )
        self._interpreter.store.add(frame)
        self._opened[index] = frame
        return frame

    def frame(self, index: int) -> FrameState | None:
        if index in self._opened:
            return self._opened[index]
        return self._interpreter.store.frame_at(self._run.id, index)

    def frames(self) -> list[FrameState]:
        return self._interpreter.store.frames_of(self._run.id)

    def worst_case_micro(self, frame: FrameState) -> int:
        return self._interpreter.worst_case_micro(self._node, frame)

    def call(self, function: Any, role: str, *args: Any) -> Any:
        return call_user_function(function, role, self._node.name, *args)

    def event(self, name: str, **fields: object) -> None:
        self._interpreter._event(name, **fields)


def _given(frame: FrameState) -> Handoff:
    return Handoff(frame.input_label, frame.input, frame.input_source)


def _node_of(step: StepState) -> str:
    if step.node is None:
        raise NodeError(f"step {step.id} names no node of its run's graph")
    return step.node


def _step_in(lineage: list[Earlier], step_id: str | None) -> StepState | None:
    """The step ``step_id`` of ``lineage``, if it is one of its steps."""
    return next((e for e in lineage if isinstance(e, StepState) and e.id == step_id), None)


def _first_pass(nodes: tuple[Node, ...]) -> list[StepNode | VerifyNode]:
    """The steps one pass through ``nodes`` calls: a nested node's first sequence, once."""
    found: list[StepNode | VerifyNode] = []
    for node in nodes:
        if isinstance(node, StepNode | VerifyNode):
            found.append(node)
        elif not isinstance(node, PASS_THROUGH):  # a check or a gate calls no model
            found.extend(_first_pass(sequences(node)[0]))
    return found
