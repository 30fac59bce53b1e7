"""When to try a failed attempt again: exponential backoff with full jitter, capped.

A provider's own ``retry-after`` wins when it gave one. Pure: no clock, no Celery.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float = 1.0
    cap_s: float = 60.0

    def delay_s(
        self, attempt: int, retry_after_s: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after_s is not None and retry_after_s >= 0:
            return min(retry_after_s, self.cap_s)
        ceiling = min(self.cap_s, self.base_s * 2 ** max(attempt - 1, 0))
        return (rng or random).uniform(0, ceiling)
