"""Module-level functions the workflow-graph tests name, as a team module would define them."""

from __future__ import annotations


def approved(verdict: str) -> bool:
    return verdict.strip().startswith("APPROVED")


def sources(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def classify(text: str) -> str:
    return "long" if len(text) > 200 else "short"


def merge(outputs: list[str]) -> str:
    return "\n---\n".join(outputs)


def same_length(a: str, b: str) -> float:
    return 1.0 if len(a) == len(b) else 0.0
