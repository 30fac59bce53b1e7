"""The settle stage: a call's real cost booked on its spend caps, in place of its worst case.

It runs once the attempt's record has committed, the call's ledger row with it, and before what
the coordinator decided is routed: the Redis counters are then never below the ledger they are
rebuilt from, whenever Redis may lose its data (a rebuild from the ledger has the call). It
books the call once however often it runs (settling is idempotent, by the call's id), and puts
the real cost in place of a worst case the sweep booked while the call outlived its lease. A
call not made held nothing, and is not settled.
"""

from __future__ import annotations

from orchestration.budget import Budget
from orchestration.step.call import Call
from orchestration.step.claim import Attempt
from storage.budget_store import Cap


class Settlement:
    def __init__(self, budget: Budget) -> None:
        self._budget = budget

    def settle(self, this: Attempt, call: Call, caps: list[Cap]) -> None:
        """Book ``call``'s real cost on ``caps``, the caps its worst case was held on."""
        self._budget.settle(this.call_id, call.cost, caps)
