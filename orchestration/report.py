"""How runs look in a terminal: one line per step as it changes, then the result."""

from __future__ import annotations

from collections.abc import Callable

from orchestration.results import StepResult, WorkflowResult


def _seconds(step: StepResult) -> str:
    if step.started_at and step.finished_at:
        return f"{(step.finished_at - step.started_at).total_seconds():.2f}s"
    return "-"


def step_line(step: StepResult) -> str:
    agent = (
        step.agent
        if step.agent == step.requested_agent
        else f"{step.agent} (for {step.requested_agent})"
    )
    return (
        f"  step {step.position + 1} {agent:<24} {step.status:<15} attempt {step.attempt}  "
        f"tokens in {step.tokens.input + step.tokens.cache_read + step.tokens.cache_creation:>6} "
        f"out {step.tokens.output:>6}  ${step.cost_usd:.6f}  {_seconds(step)}"
    )


def format_result(result: WorkflowResult, show_output: bool = True) -> str:
    tokens = result.tokens
    lines = [
        f"run {result.id}  workflow {result.workflow}  status {result.status.value}",
        f"cost ${result.cost_usd:.6f}  tokens in {tokens.input} out {tokens.output} "
        f"cache write {tokens.cache_creation} cache read {tokens.cache_read}",
    ]
    if result.finished_at is not None:
        lines.append(f"took {(result.finished_at - result.created_at).total_seconds():.2f}s")
    lines.append("steps:")
    lines.extend(step_line(step) for step in result.steps)
    if result.error:
        lines.append(f"error: {result.error}")
    if show_output and result.output is not None:
        lines.extend(["output:", result.output])
    return "\n".join(lines)


class ProgressPrinter:
    """Prints a line each time a step changes status or attempt."""

    def __init__(self, write: Callable[[str], None] = print) -> None:
        self._write = write
        self._seen: dict[str, tuple[str, int]] = {}

    def __call__(self, result: WorkflowResult) -> None:
        for step in result.steps:
            state = (step.status, step.attempt)
            if self._seen.get(step.id) != state:
                self._seen[step.id] = state
                self._write(step_line(step))
