"""A run of a workflow graph driven by hand: the interpreter over an in-memory store, each
dispatched step answered by the test, one decision per event as the coordinator makes them.

It answers in whatever order a test asks (so a test can finish branches out of order), charges
each answer's cost to the run as the record stage does, and needs no database, broker or model.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from orchestration import Agent
from orchestration.retry import Backoff
from orchestration.team import Team
from orchestration.workflow.graph import Graph, Item, build_graph
from orchestration.workflow.interpreter import Interpreter
from orchestration.workflow.kinds.step import Rules
from orchestration.workflow.state import Plan, RunState, StepState
from tests.memory_store import MemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
Answer = Callable[[StepState], str]


def team_of(*agents: str | Agent) -> Team:
    team = Team("t")
    for agent in agents:
        team.add_agent(agent if isinstance(agent, Agent) else Agent(id=agent, model="offline:echo"))
    return team


@dataclass
class Scripted:
    graph: Graph
    team: Team
    input: str = "the request"
    budget_micro: int | None = None
    run: RunState = field(init=False)
    store: MemoryStore = field(default_factory=MemoryStore)
    plans: list[Plan] = field(default_factory=list)
    now: datetime = T0

    @classmethod
    def of(cls, items: Sequence[Item], *agents: str | Agent, **options: object) -> Scripted:
        return cls(build_graph(list(items), "w"), team_of(*agents), **options)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        self.run = RunState(
            id="run",
            name="w",
            status="pending",
            priority=5,
            input=self.input,
            budget_micro=self.budget_micro,
            created_at=self.now,
        )

    def _interpreter(self) -> Interpreter:
        self.now += timedelta(milliseconds=1)
        rules = Rules(self.team, Backoff(base_s=0.0, cap_s=0.0), dispatch_timeout_s=60)
        return Interpreter(self.run, self.graph, self.store, rules, self.now)

    def start(self) -> Plan:
        plan = self._interpreter().start()
        self.plans.append(plan)
        return plan

    def dispatched(self) -> list[StepState]:
        return [step for step in self.store.steps if step.status == "dispatched"]

    def answer(self, step: StepState, output: str, cost_micro: int = 0) -> Plan:
        """``step``'s attempt succeeded with ``output``; decide what follows."""
        step.status, step.output, step.finished_at = "succeeded", output, self.now
        self.run.cost_micro += cost_micro
        plan = self._interpreter().after_step(step)
        self.plans.append(plan)
        return plan

    def fail(self, step: StepState, kind: str = "rejected", retryable: bool = False) -> Plan:
        """``step``'s attempt failed (``kind``); decide what follows."""
        step.status, step.error_kind, step.error = "attempt_failed", kind, f"injected {kind}"
        step.error_retryable = retryable
        plan = self._interpreter().after_step(step)
        self.plans.append(plan)
        return plan

    def advance(self) -> Plan:
        plan = self._interpreter().advance()
        self.plans.append(plan)
        return plan

    def run_all(
        self,
        answer: Answer,
        pick: Callable[[list[StepState]], StepState] = lambda steps: steps[0],
        cost_micro: Callable[[StepState], int] = lambda step: 0,
        limit: int = 10_000,
    ) -> RunState:
        """Start the run and answer every step it dispatches (``pick`` chooses which one next)
        until none is left. Returns the run."""
        self.start()
        for _ in range(limit):
            waiting = self.dispatched()
            if not waiting or self.finished:
                return self.run
            step = pick(waiting)
            self.answer(step, answer(step), cost_micro(step))
        raise AssertionError("the run did not settle")

    @property
    def finished(self) -> bool:
        return self.run.status in ("succeeded", "failed", "budget_exceeded", "timed_out")

    def steps_of(self, node: str) -> list[StepState]:
        return [step for step in self.store.steps if step.node == node]

    def events(self, name: str) -> list[dict[str, object]]:
        return [fields for plan in self.plans for event, fields in plan.events if event == name]


def shuffled(seed: int) -> Callable[[list[StepState]], StepState]:
    """Pick the next step to answer at random (the same every time for one ``seed``)."""
    chooser = random.Random(seed)
    return lambda steps: chooser.choice(steps)


def by_agent(**answers: str) -> Answer:
    """Answer each step with the text given for its agent, else '<agent> says ok'."""
    return lambda step: answers.get(step.agent_id, f"{step.agent_id} says ok")
