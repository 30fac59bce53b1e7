"""The agent step runner, imported from here as before; it lives in ``orchestration.step``,
stage by stage."""

from orchestration.step.runner import StepRunner

__all__ = ["StepRunner"]
