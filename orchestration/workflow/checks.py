"""Validation checkpoints: what a check is given, what it answers, and what is kept of it.

A check is a module-level function ``fn(output: str, run: RunView) -> Verdict`` named on a step
(``step("writer", checks=[cites_sources])``) or as a node of its own (``check(cites_sources)``).
It reads the output and the run (its input, the outputs of the nodes before it, the facts it was
given) and says whether the output may go on, and if not, why: the reason goes back to the agent
when it is asked again. An agent's ``output_schema`` is a check too: the output must parse as
that JSON. Every verdict is kept on the step it judged (``CheckResult``), whatever it said.
Nothing here calls a model or touches a store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestration.workflow.functions import FunctionRef
from orchestration.workflow.kinds.base import NodeError, call_user_function

SCHEMA_CHECK = "output_schema"  # the name a schema's verdict is kept under


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a check says of an output: it may go on (``ok``), or why not (``reason``, which the
    agent is told when it is asked again)."""

    ok: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RunView:
    """The run as a check sees it, read-only: its input, the outputs of the nodes that finished
    before the one checked (by node name, in order), and the facts it was submitted with."""

    input: str
    outputs: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    facts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One verdict on the audit trail: the check's name (its function's, or ``output_schema``),
    what it said, and which attempt of the step it judged."""

    name: str
    ok: bool
    reason: str
    attempt: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "reason": self.reason, "attempt": self.attempt}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckResult:
        return cls(str(data["name"]), bool(data["ok"]), str(data["reason"]), int(data["attempt"]))


def run_check(
    function: FunctionRef, node: str, output: str, run: RunView, attempt: int
) -> CheckResult:
    """``function``'s verdict on ``output``; ``NodeError`` if it raises or answers something
    other than a ``Verdict``."""
    verdict = call_user_function(function, "check", node, output, run)
    if not isinstance(verdict, Verdict):
        raise NodeError(
            f"{node}: its check {function.path} must return a Verdict(ok, reason), it returned "
            f"{type(verdict).__name__}"
        )
    return CheckResult(function.name, bool(verdict.ok), str(verdict.reason), attempt)


def parse_output(schema: type[BaseModel], output: str, attempt: int) -> tuple[CheckResult, Any]:
    """Whether ``output`` is JSON that ``schema`` takes, and the value it parses to (as JSON
    data: what ``StepResult.data`` holds), or None. A fence around the JSON (```json ... ```)
    is allowed: models write one."""
    text = _unfenced(output)
    try:
        parsed = schema.model_validate_json(text)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'the answer'}: {e['msg']}"
            for e in error.errors()[:5]
        )
        reason = f"the answer is not JSON that {schema.__name__} takes: {problems}"
        return CheckResult(SCHEMA_CHECK, False, reason, attempt), None
    return CheckResult(SCHEMA_CHECK, True, "", attempt), parsed.model_dump(mode="json")


def schema_instructions(schema: type[BaseModel]) -> str:
    """What an agent with an output schema is told, after its system prompt."""
    return (
        "Answer with one JSON object that matches this JSON Schema, and nothing else:\n"
        + json.dumps(schema.model_json_schema(), separators=(",", ":"))
    )


def refusal(result: CheckResult) -> str:
    """What the agent is asked when its answer was refused."""
    return (
        f"Your answer was refused by the check {result.name}: {result.reason}\n"
        "Answer again, in full, with that fixed."
    )


def _unfenced(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        inner = stripped[3:-3]
        first, _, rest = inner.partition("\n")
        return rest if first.strip().isalpha() or not first.strip() else inner
    return stripped


class _VerifierAnswer(BaseModel):
    ok: bool
    reason: str = ""


VERIFY_SHAPE = '{"ok": true or false, "reason": "what is wrong, or empty"}'


def verify_prompt(request: str, truth_label: str, truth: list[str], label: str, text: str) -> str:
    """What a verifier is asked: the text to judge, the ground truth, and the verdict's shape."""
    lines = "\n".join(f"- {item}" for item in truth) or "(none given)"
    return (
        f"Request:\n{request}\n\n{truth_label}:\n{lines}\n\n{label}:\n{text}\n\n"
        "Judge the text against the ground truth above: ok is false if it contradicts it, or "
        "states as fact something it does not support. Answer with one JSON object and nothing "
        f"else: {VERIFY_SHAPE}"
    )


def parse_verdict(output: str) -> Verdict | None:
    """A verifier's answer as a ``Verdict``; None if it is not the fixed shape."""
    try:
        answer = _VerifierAnswer.model_validate_json(_unfenced(output))
    except ValidationError:
        return None
    return Verdict(answer.ok, answer.reason)
