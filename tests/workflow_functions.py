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


def raises(text: str) -> bool:
    raise ValueError(f"no opinion on {text!r}")


def lines(text: str) -> list[str]:
    """Every line of ``text`` that is not blank, a fan-out's items."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def nothing(text: str) -> list[str]:
    return []


def not_a_list(text: str) -> str:
    return text


def label_of(text: str) -> str:
    """The first word of ``text``: a route's label."""
    return text.split()[0] if text.split() else ""


def cites_sources(output: str, run: object) -> object:
    from orchestration import Verdict

    return Verdict("[1]" in output, "cite at least one source as [1]")


def seen_refused(output: str, run: object) -> object:
    """Accepts only an answer to a re-ask (the offline model names its task in its answer)."""
    from orchestration import Verdict

    return Verdict("refused" in output, "answer again")


def uses_a_fact(output: str, run: object) -> object:
    from orchestration import RunView, Verdict

    assert isinstance(run, RunView)
    return Verdict(any(fact in output for fact in run.facts), f"use one of {list(run.facts)}")


def sees_the_run(output: str, run: object) -> object:
    """Accepts anything, and says in its reason what it saw of the run."""
    from orchestration import RunView, Verdict

    assert isinstance(run, RunView)
    return Verdict(True, f"{run.input}|{dict(run.outputs)}|{list(run.facts)}")


def answers_text(output: str, run: object) -> str:
    return "fine"
