"""Which spend caps a call answers to, and how much of them it must hold before it is made.

Three caps can apply to one call:
- the agent's ``cost_limit_usd``, per UTC day (a cap that never reset would retire the agent);
- the run's ``budget_usd`` (``Workflow.sequence(..., budget_usd=...)``), for the whole run;
- the workflow type's ``daily_budget_usd``, per UTC day, over all its runs: one bad workflow
  type cannot spend the month.

Before a call, its worst case is held against all of them at once (``storage.budget_store``):
the agent's ``max_tokens`` at the output price, plus an upper bound on its input tokens at the
dearest input rate. A call that does not fit is not made (``CostLimitExceeded``). After the call
its real cost is settled and the rest freed. A call under no cap touches no Redis at all.

A hold that runs out (its worker died mid-call) is not handed back: the call may have been
billed, so its worst case stays booked as spent, and the sweep that gives the attempt up writes
the same amount in the cost ledger, marked unknown (``forfeit``). Calls cut off by kills can
therefore never add up past a cap; a late settlement corrects the booking to the real cost.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

import structlog

from orchestration.definitions import Agent, Workflow
from orchestration.pricing import PriceTable, usd_to_micro
from storage.budget_store import Booked, BudgetStore, Cap, CountersNotLoaded, Forfeit, Settled
from storage.errors import ConfigurationError, CostLimitExceeded
from workers.providers.base import ModelRequest, block_text, tool_json

log = structlog.get_logger(__name__)
T = TypeVar("T")

# Tokens are at least one byte of UTF-8 each, so bytes bound them; a few more per message (and
# per preamble block, content block and tool) cover the roles and the turn and block markers the
# API adds.
TOKENS_PER_MESSAGE = 16
# The system prompt the API adds when tools are offered: the most Anthropic's tool-use pricing
# page lists is 530 tokens (Claude 3 Opus, tool_choice auto); the rest is margin for a model
# that adds more.
TOOL_USE_SYSTEM_TOKENS = 1024


def input_tokens_bound(request: ModelRequest) -> int:
    """At least as many input tokens as ``request`` can be billed for (cache writes and reads
    included: they are input tokens too): every block counted (a tool call's input as its
    JSON, a tool result, a thinking block), and the tools offered with the API's tool-use
    system prompt."""
    text = len(request.system.encode()) + len(request.preamble.encode())
    blocks = len(request.messages) + 1 + (1 if request.preamble else 0)
    for message in request.messages:
        if isinstance(message.content, str):
            text += len(message.content.encode())
        else:
            text += sum(len(block_text(b).encode()) for b in message.content)
            blocks += len(message.content)
    if request.tools:
        text += sum(len(json.dumps(tool_json(t)).encode()) for t in request.tools)
        blocks += len(request.tools)
        text += TOOL_USE_SYSTEM_TOKENS
    return text + TOKENS_PER_MESSAGE * blocks


def caps_for(
    agent: Agent, workflow: Workflow | None, run_id: str, run_budget_micro: int | None
) -> list[Cap]:
    caps: list[Cap] = []
    if agent.cost_limit_usd is not None:
        caps.append(Cap(f"agent:{agent.id}", usd_to_micro(agent.cost_limit_usd), "day"))
    if run_budget_micro is not None:
        caps.append(Cap(f"run:{run_id}", run_budget_micro, "run"))
    if workflow is not None and workflow.daily_budget_usd is not None:
        caps.append(
            Cap(f"workflow:{workflow.name}", usd_to_micro(workflow.daily_budget_usd), "day")
        )
    return caps


class Budget:
    def __init__(
        self,
        store: BudgetStore | None,
        prices: PriceTable,
        restore: Callable[[], int] | None = None,
    ) -> None:
        """``store`` may be None when no Redis is configured; a cap then cannot be enforced,
        and a call under one is refused with a configuration error. ``restore`` brings the
        counters back from the cost ledger when Redis has lost them."""
        self._store = store
        self._prices = prices
        self._restore = restore

    def hold(self, hold_id: str, request: ModelRequest, caps: list[Cap], ttl_s: float) -> None:
        """Hold the worst case of ``request`` against ``caps``, or raise ``CostLimitExceeded``.
        The hold runs out by itself after ``ttl_s`` (a killed worker's comes back)."""
        if not caps:
            return
        if self._store is None:
            raise ConfigurationError(
                "spend caps need Redis: set AGENTYARD_REDIS_URL, or remove the caps"
            )
        needed = self.worst_case_micro(request)
        store = self._store
        refusal = self._after_restoring(lambda: store.reserve(hold_id, needed, ttl_s, caps))
        if refusal is not None:
            raise CostLimitExceeded(
                refusal.scope,
                refusal.spent_micro,
                refusal.reserved_micro,
                refusal.cap_micro,
                needed,
            )

    def worst_case_micro(self, request: ModelRequest) -> int:
        """The most ``request`` can cost (what a call holds against its caps)."""
        return self._prices.worst_case_micro(
            request.model, input_tokens_bound(request), request.max_tokens
        )

    def forfeit(self, hold_id: str, request: ModelRequest, caps: list[Cap]) -> Forfeit:
        """A call cut off by a dead worker: book its worst case against ``caps`` as spent but
        unknown, unless it settled (then its cost is known). Returns what is now booked, for the
        cost ledger. Under no cap, nothing is booked and the worst case is returned."""
        worst = self.worst_case_micro(request)
        if not caps or self._store is None:
            return Forfeit(Booked.UNHELD, worst)
        store = self._store
        return self._after_restoring(lambda: store.forfeit(hold_id, worst, caps))

    def settle(self, hold_id: str, cost_micro: int, caps: list[Cap]) -> None:
        """Book the call's real cost against the caps it was held against (idempotent). If Redis
        lost the hold with the rest of its data, the cost is booked on the caps all the same,
        after the counters are restored from the ledger (which does not hold this call yet)."""
        if caps and self._store is not None:
            store = self._store
            settled = self._after_restoring(lambda: store.settle(hold_id, cost_micro, caps))
            if settled is Settled.HOLD_LOST:
                log.warning("budget.hold_lost", hold_id=hold_id, booked_micro=cost_micro)

    def _after_restoring(self, operation: Callable[[], T]) -> T:
        """``operation``; if Redis lost the counters, restore them from the ledger and retry."""
        try:
            return operation()
        except CountersNotLoaded:
            if self._restore is None:
                raise ConfigurationError(
                    "the spend counters are not in Redis; run `agentyard costs rebuild`"
                ) from None
            log.warning("budget.counters_restored", raised=self._restore())
            return operation()
