"""The floor under agentyard's step: what a step asks of PostgreSQL and Redis, done by a plain
Celery task with none of agentyard's logic (``bench/overhead.py --floor``).

A step of the five-step sequence costs the servers, measured: about ten SQL statements in two
transactions (a claim committed alone, then one transaction that records the result, its trace,
ledger and audit rows, locks the run, reads its steps and dispatches the next step with its
outbox row), a Redis script, and one publish. ``step`` here runs statements of the
same kinds on tables of the same shapes, through agentyard's own executor (the same psycopg path
and pool), and a script of three commands on Redis; the Celery chain publishes the next step.
What is left out is everything agentyard decides in Python: the envelope, the stages, the
interpreter, the checks, the rows it composes, its log lines.

So ``celery + storage`` steps/s against plain Celery is the most any step that keeps agentyard's
durability could reach on this machine, and agentyard against it is what its logic costs.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from storage.executor import run_alone, transaction

TABLES = (
    """CREATE TABLE IF NOT EXISTS floor_workflow (
        id text PRIMARY KEY, status text NOT NULL, input text, output text,
        cost_micro bigint NOT NULL DEFAULT 0, created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL, finished_at timestamptz)""",
    """CREATE TABLE IF NOT EXISTS floor_step (
        id text PRIMARY KEY, workflow_id text NOT NULL REFERENCES floor_workflow (id),
        position int NOT NULL, status text NOT NULL, attempt int NOT NULL DEFAULT 1,
        prompt text, output text, claim_token text, request_id text,
        input_tokens int NOT NULL DEFAULT 0, output_tokens int NOT NULL DEFAULT 0,
        dispatched_at timestamptz, started_at timestamptz, finished_at timestamptz,
        lease_until timestamptz)""",
    "CREATE INDEX IF NOT EXISTS floor_step_workflow ON floor_step (workflow_id)",
    """CREATE TABLE IF NOT EXISTS floor_message (
        id text PRIMARY KEY, workflow_id text NOT NULL, step_id text, type text NOT NULL,
        sender text NOT NULL, payload jsonb NOT NULL, created_at timestamptz NOT NULL,
        delivered_at timestamptz)""",
    "CREATE INDEX IF NOT EXISTS floor_message_workflow ON floor_message (workflow_id)",
    """CREATE TABLE IF NOT EXISTS floor_trace (
        id text PRIMARY KEY, workflow_id text NOT NULL, step_id text NOT NULL,
        attempt int NOT NULL, prompt text, output text, usage jsonb NOT NULL,
        created_at timestamptz NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS floor_trace_step ON floor_trace (step_id)",
    """CREATE TABLE IF NOT EXISTS floor_ledger (
        id text PRIMARY KEY, workflow_id text NOT NULL, step_id text NOT NULL,
        agent_id text NOT NULL, model text NOT NULL, input_tokens int NOT NULL,
        output_tokens int NOT NULL, cost_micro bigint NOT NULL, created_at timestamptz NOT NULL)""",
)

_INSERT_WORKFLOW = text(
    "INSERT INTO floor_workflow (id, status, input, created_at, updated_at) "
    "VALUES (:id, 'running', :input, now(), now())"
)
_INSERT_STEP = text(
    "INSERT INTO floor_step (id, workflow_id, position, status, prompt, request_id, "
    "dispatched_at, lease_until) VALUES (:id, :workflow_id, :position, 'dispatched', :prompt, "
    ":request_id, now(), now() + interval '5 minutes')"
)
_INSERT_MESSAGE = text(
    "INSERT INTO floor_message (id, workflow_id, step_id, type, sender, payload, created_at, "
    "delivered_at) VALUES (:id, :workflow_id, :step_id, :type, :sender, "
    "CAST(:payload AS jsonb), now(), :delivered)"
)
_CLAIM = text(
    "UPDATE floor_step SET status = 'running', claim_token = :token, started_at = now(), "
    "lease_until = now() + interval '5 minutes' "
    "WHERE id = :id AND status = 'dispatched' RETURNING prompt, request_id"
)
_SUCCEEDED = text(
    "UPDATE floor_step SET status = 'succeeded', output = :output, finished_at = now(), "
    "input_tokens = input_tokens + 12, output_tokens = output_tokens + 9 "
    "WHERE id = :id AND attempt = 1 RETURNING id, position, status, output"
)
_INSERT_TRACE = text(
    "INSERT INTO floor_trace (id, workflow_id, step_id, attempt, prompt, output, usage, "
    "created_at) VALUES (:id, :workflow_id, :step_id, 1, :prompt, :output, "
    "CAST(:usage AS jsonb), now())"
)
_INSERT_LEDGER = text(
    "INSERT INTO floor_ledger (id, workflow_id, step_id, agent_id, model, input_tokens, "
    "output_tokens, cost_micro, created_at) VALUES (:id, :workflow_id, :step_id, 'bench', "
    "'offline:echo', 12, 9, 0, now())"
)
_DELIVERED = text("UPDATE floor_message SET delivered_at = now() WHERE id = :id")
_LOCK_WORKFLOW = text(
    "UPDATE floor_workflow SET updated_at = now(), cost_micro = cost_micro + 0 "
    "WHERE id = :id RETURNING id, status, cost_micro"
)
_STEPS_OF_WORKFLOW = text(
    "SELECT id, position, status, output FROM floor_step WHERE workflow_id = :id ORDER BY position"
)
_FINISH_WORKFLOW = text(
    "UPDATE floor_workflow SET status = 'succeeded', output = :output, finished_at = now() "
    "WHERE id = :id"
)

# Reads a breaker's state and counts the call on it: three commands, as admitting a call does.
_ADMIT = """
local state = redis.call('HGET', KEYS[1], 'state')
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], 60000)
return state
"""


def create_tables(database_url: str) -> None:
    for ddl in TABLES:
        run_alone(database_url, text(ddl), {})


def step_id(workflow_id: str, position: int) -> str:
    return f"{workflow_id}:{position}"


def submit(database_url: str, workflow_id: str, prompt: str) -> None:
    """The run's row, its first step and that step's request, in one transaction."""
    first = step_id(workflow_id, 0)
    request = uuid.uuid4().hex
    with transaction(database_url) as tx:
        tx.run(_INSERT_WORKFLOW, {"id": workflow_id, "input": prompt})
        tx.run(
            _INSERT_STEP,
            {
                "id": first,
                "workflow_id": workflow_id,
                "position": 0,
                "prompt": prompt,
                "request_id": request,
            },
        )
        tx.run(_INSERT_MESSAGE, _message(request, workflow_id, first, "request", False))


def admit_script(redis: Any) -> Any:
    """The Redis script a step runs, registered on ``redis`` (EVALSHA, as agentyard's are)."""
    return redis.register_script(_ADMIT)


def step(database_url: str, admit: Any, prefix: str, workflow_id: str, position: int) -> None:
    """One step: the claim, the script on Redis (``admit_script``'s), the result and the next
    dispatch."""
    this = step_id(workflow_id, position)
    claimed = run_alone(database_url, _CLAIM, {"id": this, "token": uuid.uuid4().hex})
    row = claimed.one_or_none()
    if row is None:
        return
    admit(keys=[f"{prefix}floor:breaker", f"{prefix}floor:calls"])
    output = f"{row.prompt[:64]} (step {position})"
    with transaction(database_url) as tx:
        tx.run(_SUCCEEDED, {"id": this, "output": output}).one_or_none()
        tx.run(
            _INSERT_TRACE,
            {
                "id": uuid.uuid4().hex,
                "workflow_id": workflow_id,
                "step_id": this,
                "prompt": row.prompt,
                "output": output,
                "usage": json.dumps({"input_tokens": 12, "output_tokens": 9}),
            },
        )
        tx.run(
            _INSERT_LEDGER,
            {"id": uuid.uuid4().hex, "workflow_id": workflow_id, "step_id": this},
        )
        tx.run(_DELIVERED, {"id": row.request_id})
        response = _message(uuid.uuid4().hex, workflow_id, this, "response", True)
        tx.run(_INSERT_MESSAGE, response)
        tx.run(_LOCK_WORKFLOW, {"id": workflow_id}).one_or_none()
        steps = tx.run(_STEPS_OF_WORKFLOW, {"id": workflow_id}).rows
        if position + 1 < 5 and len(steps) == position + 1:
            after, request = step_id(workflow_id, position + 1), uuid.uuid4().hex
            next_step = {"id": after, "workflow_id": workflow_id, "position": position + 1}
            tx.run(_INSERT_STEP, next_step | {"prompt": output, "request_id": request})
            tx.run(_INSERT_MESSAGE, _message(request, workflow_id, after, "request", False))
        else:
            tx.run(_FINISH_WORKFLOW, {"id": workflow_id, "output": output})


def _message(
    message_id: str, workflow_id: str, of_step: str, kind: str, delivered: bool
) -> dict[str, Any]:
    """An outbox row's values: a request (not delivered yet) or a response (delivered now)."""
    return {
        "id": message_id,
        "workflow_id": workflow_id,
        "step_id": of_step,
        "type": kind,
        "sender": "coordinator" if kind == "request" else "agent",
        "payload": json.dumps({"step_id": of_step, "attempt": 1, "priority": 5}),
        "delivered": datetime.now(UTC) if delivered else None,
    }
