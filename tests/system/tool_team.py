"""The team the tool system tests run in real worker processes, every call through the real SDK
to the stub server; each tool that does something writes a line to TOOL_TEAM_FILE, so a test
can count how often it ran."""

import os
import time
from pathlib import Path
from typing import Annotated

from pydantic import Field

from orchestration import Agent, Orchestrator, ToolContext, Workflow, tool

MODEL = "claude-haiku-4-5"


def _file() -> Path:
    return Path(os.environ["TOOL_TEAM_FILE"])


def _knob(name: str, default: str) -> str:
    return os.environ.get(f"TOOL_TEAM_{name}") or default


@tool
def look_up(order: Annotated[int, Field(description="The order's number")]) -> dict[str, object]:
    """Look an order up: its customer and amount."""
    return {"order": order, "customer": "Ada", "amount": 12.5}


def _started(ctx: ToolContext) -> None:
    """Note that the call started (``<file>.started``, a line per start), and, the first time
    it starts, take PAUSE_S seconds (long enough to be killed while it runs)."""
    started = Path(f"{_file()}.started")
    before = started.read_text().splitlines() if started.exists() else []
    with started.open("a") as out:
        out.write(f"{ctx.tool} {ctx.idempotency_key}\n")
    if f"{ctx.tool} {ctx.idempotency_key}" not in before:
        time.sleep(float(_knob("PAUSE_S", "0")))


@tool(side_effects=True, timeout_s=8)
def send_email(to: str, body: str, ctx: ToolContext) -> str:
    """Send an email (here: a line in the outbox file)."""
    _started(ctx)
    with _file().open("a") as out:
        out.write(f"email {ctx.idempotency_key} {to}: {body}\n")
    return f"sent to {to}"


@tool(side_effects=True, idempotent=True, timeout_s=8)
def refund(order: int, ctx: ToolContext) -> str:
    """Refund an order, at most once per idempotency key (as a payments API does)."""
    _started(ctx)
    lines = _file().read_text().splitlines() if _file().exists() else []
    if not any(line.startswith(f"refund {ctx.idempotency_key} ") for line in lines):
        with _file().open("a") as out:
            out.write(f"refund {ctx.idempotency_key} {order}\n")
    return f"refunded order {order}"


@tool(side_effects=True, needs_approval=True, timeout_s=8)
def pay(to: str, amount: float, ctx: ToolContext) -> str:
    """Pay a supplier (here: a line in the outbox file); a person approves every payment."""
    with _file().open("a") as out:
        out.write(f"pay {ctx.idempotency_key} {to} {amount:g}\n")
    return f"paid {amount:g} to {to}"


@tool
def explode(reason: str) -> str:
    """Fail on purpose."""
    raise RuntimeError(f"the warehouse is closed: {reason}")


orc = Orchestrator(_knob("NAME", "tools"))
orc.register_agent(
    Agent(
        id="clerk",
        model=MODEL,
        system_prompt="You handle customers' orders with your tools.",
        tools=[look_up, send_email, refund, explode],
        max_tool_turns=int(_knob("MAX_TOOL_TURNS", "10")),
        timeout_s=float(_knob("TIMEOUT_S", "60")),
    )
)
orc.register_agent(Agent(id="reviewer", model=MODEL, system_prompt="You review."))
orc.register_agent(
    Agent(
        id="payer",
        model=MODEL,
        system_prompt="You pay suppliers' invoices.",
        tools=[look_up, pay],
    )
)
orc.register_workflow(Workflow("service", ["clerk", "reviewer"]))
# every call of a tool with side effects from an untrusted context waits for a person
orc.register_workflow(Workflow("guarded", ["clerk"], approve_untrusted_side_effects=True))
orc.register_workflow(Workflow("payout", ["payer", "reviewer"]))
orc.register_workflow(
    Workflow(
        "hasty_payout", ["payer"], tool_approval_timeout_s=2, tool_approval_on_timeout="reject"
    )
)

app = orc.celery
