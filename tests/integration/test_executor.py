"""The hot path's statements on real PostgreSQL: psycopg's direct path gives what SQLAlchemy's
gives, and a connection the server dropped never goes back into service."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import make_url, text

from storage import statements
from storage.db import engine_for, migrate
from storage.executor import Tx, run_alone, transaction, within

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@contextmanager
def _alchemy(url: str) -> Iterator[Tx]:
    with engine_for(url).begin() as connection:
        yield within(connection)


def _script(url: str, begin: Callable[[str], Any], tag: str) -> list[Any]:
    """Every hot-path statement once, in the order a run uses them; returns what each gave."""
    run_id, first, second = f"{tag}-run", f"{tag}-s0", f"{tag}-s1"
    seen: list[Any] = []

    def record(result: Any, counted: bool = True) -> None:
        # SQLAlchemy does not count the rows of an INSERT (-1); nothing here relies on it.
        seen.append((result.rowcount if counted else None, [row._asdict() for row in result]))

    with begin(url) as tx:
        record(
            tx.run(
                statements.INSERT_WORKFLOW,
                {
                    "id": run_id,
                    "team": "t",
                    "name": "seq",
                    "priority": 5,
                    "input": "the telegraph",
                    "status": "running",
                    "output": None,
                    "error": None,
                    "finished_at": None,
                    "budget_micro": None,
                    "cost_micro": 0,
                    "created_at": T0,
                    "updated_at": T0,
                },
            ),
            counted=False,
        )
        record(
            tx.run(
                statements.INSERT_STEP,
                [
                    {"id": first, "workflow_id": run_id, "position": 0, "agent_id": "a"},
                    {"id": second, "workflow_id": run_id, "position": 1, "agent_id": "b"},
                ],
            ),
            counted=False,
        )
    with begin(url) as tx:
        record(tx.run(statements.LOCK_WORKFLOW, {"w_id": run_id, "updated_at": T0, "add_cost": 7}))
        planned = {name: None for name in statements.PLANNED_STEP_COLUMNS}
        planned |= {
            "reasks": 0,
            "status": "dispatched",
            "ran_by": "a",
            "attempt": 1,
            "agent_attempt": 1,
            "request_id": f"{tag}-m1",
            "prompt": "the telegraph",
            "history": [["earlier question", "earlier answer"]],
            "dispatched_at": T0,
            "lease_until": T0 + timedelta(hours=1),
        }
        record(tx.run(statements.SAVE_STEP, {"w_id": first, **planned}))
        record(
            tx.run(
                statements.INSERT_MESSAGE,
                {
                    "id": f"{tag}-m1",
                    "workflow_id": run_id,
                    "step_id": first,
                    "type": "request",
                    "sender": "coordinator",
                    "recipients": ["a"],
                    "task": "agent.a",
                    "queue": "agent.a",
                    "priority": 5,
                    "payload": {"step_id": first, "attempt": 1},
                    "created_at": T0,
                    "delivered_at": None,
                },
            ),
            counted=False,
        )
    claim = {"w_id": first, "w_attempt": 1, "started_at": T0, "lease_until": T0}
    mine, other = {"w_token": "t1", "claim_token": "t1"}, {"w_token": "t2", "claim_token": "t2"}
    record(run_alone(url, statements.CLAIM_STEP, claim | mine))
    record(run_alone(url, statements.CLAIM_STEP, claim | other))  # the fence: another delivery
    record(run_alone(url, statements.CLAIM_STEP, claim | mine))  # the same one, claiming again
    with begin(url) as tx:
        usage = {"add_input": 3, "add_output": 4, "add_cache_creation": 1, "add_cache_read": 2}
        usage["add_cache_creation_1h"] = 1
        fenced = {"w_id": first, "w_attempt": 1, "add_cost": 7, **usage}
        record(tx.run(statements.STEP_SUCCEEDED, {**fenced, "output": "done", "finished_at": T0}))
        record(tx.run(statements.MARK_DELIVERED, {"w_id": f"{tag}-m1", "delivered_at": T0}))
        in_scopes = statements.scopes_params([""])
        record(tx.run(statements.STEPS_IN_SCOPES, {"w_id": run_id, **in_scopes}))
        record(
            tx.run(
                statements.SAVE_WORKFLOW,
                {"w_id": run_id, "status": "succeeded", "output": "done", "error": None}
                | {"finished_at": T0},
            )
        )
    return seen


def _without_tag(value: Any, tag: str) -> Any:
    if isinstance(value, str):
        return value.replace(tag, "TAG")
    if isinstance(value, list):
        return [_without_tag(v, tag) for v in value]
    if isinstance(value, tuple):
        return tuple(_without_tag(v, tag) for v in value)
    if isinstance(value, dict):
        return {k: _without_tag(v, tag) for k, v in value.items()}
    return value


def test_every_hot_path_statement_gives_the_same_through_psycopg_and_sqlalchemy(
    postgres_url: str,
) -> None:
    migrate(postgres_url)
    direct, alchemy = f"d{uuid.uuid4().hex[:8]}", f"a{uuid.uuid4().hex[:8]}"

    through_psycopg = _without_tag(_script(postgres_url, transaction, direct), direct)
    through_alchemy = _without_tag(_script(postgres_url, _alchemy, alchemy), alchemy)

    assert through_psycopg == through_alchemy
    claimed, fenced, again = through_psycopg[5], through_psycopg[6], through_psycopg[7]
    assert claimed == (
        1,
        [
            {
                "prompt": "the telegraph",
                "history": [["earlier question", "earlier answer"]],
                "preamble": None,
                "agent_id": "a",
                "parent_step_id": None,
            }
        ],
    )
    assert fenced == (0, [])
    assert again == claimed  # a claim retried after its commit was lost goes through again
    steps = through_psycopg[10][1]
    assert steps[0]["status"] == "succeeded" and steps[1]["status"] == "pending"
    assert steps[1]["error_retryable"] is False  # a column default filled in by the executor


def _graph_script(url: str, begin: Callable[[str], Any], tag: str) -> list[Any]:
    """Every statement the interpreter's store runs (``orchestration/run_store.py``), once."""
    run_id, node_run = f"{tag}-run", f"{tag}-n0"
    seen: list[Any] = []

    def record(result: Any) -> None:
        seen.append([row._asdict() for row in result])

    workflow = {
        "id": run_id,
        "team": "t",
        "name": "graph",
        "status": "succeeded",  # finished: no other test's sweep takes it up
        "input": "x",
        "created_at": T0,
        "updated_at": T0,
        "graph": {"schema": 1, "nodes": []},
        "facts": ["Morse, 1844"],
    }
    node = {
        "workflow_id": run_id,
        "id": node_run,
        "node": "fan_out1",
        "scope": "",
        "kind": "fan_out",
        "input": "a\nb",
        "input_label": "Output of the previous step (writer)",
        "input_source": None,
        "started_at": T0,
        "status": "running",
        "output": None,
        "error": None,
        "error_kind": None,
        "progress": {"total": 2, "started": 1},
        "finished_at": None,
    }
    frames = [
        {
            "workflow_id": run_id,
            "id": f"{tag}-f{i}",
            "node_run_id": node_run,
            "index": i,
            "scope": f"fan_out1#{i}",
            "input": item,
            "input_label": f"Item {i + 1} of 2",
            "input_source": None,
            "status": "running" if i == 0 else "waiting",
            "first_output": None,
            "output": None,
            "error": None,
            "error_kind": None,
            "held_micro": 5,
            "started_at": T0 if i == 0 else None,
            "finished_at": None,
        }
        for i, item in enumerate(["a", "b"])
    ]
    step = {name: None for name in statements.STEP_STATE_COLUMNS} | {
        "workflow_id": run_id,
        "id": f"{tag}-s0",
        "position": 0,
        "agent_id": "summarizer",
        "node": "fan_out1/summarizer",
        "branch": 0,
        "scope": "fan_out1#0",
        "status": "succeeded",
        "attempt": 1,
        "agent_attempt": 1,
        "output": "done",
        "checks": [{"name": "cites", "ok": True, "reason": "", "attempt": 1}],
        "reasks": 0,
        "error_retryable": False,
    }
    with begin(url) as tx:
        tx.run(statements.INSERT_WORKFLOW, workflow)
        tx.run(statements.INSERT_NODE_RUN, [node])
        tx.run(statements.INSERT_FRAME, frames)
        tx.run(
            statements.INSERT_STEP,
            [
                step,
                step
                | {
                    "id": f"{tag}-s1",
                    "position": 1,
                    "scope": "fan_out1#1",
                    "status": "pending",
                    "output": None,
                },
            ],
        )
    with begin(url) as tx:
        record(tx.run(statements.WORKFLOW_GRAPH, {"w_id": run_id}))
        scopes = statements.scopes_params(["", "fan_out1#0"])
        record(tx.run(statements.STEPS_IN_SCOPES, {"w_id": run_id, **scopes}))
        record(tx.run(statements.NODE_RUNS_IN_SCOPES, {"w_id": run_id, **scopes}))
        record(
            tx.run(statements.NODE_RUN_AT, {"w_id": run_id, "w_scope": "", "w_node": "fan_out1"})
        )
        record(tx.run(statements.FRAME_AND_OWNER_AT, {"w_id": run_id, "w_scope": "fan_out1#1"}))
        record(tx.run(statements.FRAME_OF_INDEX, {"w_node_run": node_run, "w_index": 0}))
        record(tx.run(statements.UNSETTLED_STEPS, {"w_id": run_id}))
        record(tx.run(statements.LAST_OUTPUT, {"w_id": run_id}))
        record(tx.run(statements.STEPS_DONE, {"w_id": run_id}))
        record(tx.run(statements.NEXT_POSITION, {"w_id": run_id}))
        record(tx.run(statements.AGENTS_OF_STEPS, {"w_id": run_id}))
        record(tx.run(statements.WORKFLOW_FACTS, {"w_id": run_id}))
        saved = {name: node[name] for name in statements.SAVED_NODE_RUN_COLUMNS}
        tx.run(statements.SAVE_NODE_RUN, {"w_id": node_run, **saved, "progress": {"total": 2}})
        frame = {name: frames[1][name] for name in statements.SAVED_FRAME_COLUMNS}
        tx.run(statements.SAVE_FRAME, [{"w_id": f"{tag}-f1", **frame, "status": "running"}])
        record(tx.run(statements.FRAMES_OF_NODE_RUN, {"w_node_run": node_run}))
        record(
            tx.run(statements.NODE_RUN_AT, {"w_id": run_id, "w_scope": "", "w_node": "fan_out1"})
        )
    return seen


def test_every_graph_statement_gives_the_same_through_psycopg_and_sqlalchemy(
    postgres_url: str,
) -> None:
    migrate(postgres_url)
    direct, alchemy = f"d{uuid.uuid4().hex[:8]}", f"a{uuid.uuid4().hex[:8]}"

    through_psycopg = _without_tag(_graph_script(postgres_url, transaction, direct), direct)
    through_alchemy = _without_tag(_graph_script(postgres_url, _alchemy, alchemy), alchemy)

    assert through_psycopg == through_alchemy
    graph, in_scopes, runs, run, frame, first, unsettled, last, done, position, agents = (
        through_psycopg[:11]
    )
    assert graph == [{"graph": {"schema": 1, "nodes": []}}]
    assert [step["scope"] for step in in_scopes] == ["fan_out1#0"]  # not the other branch's
    assert [r["progress"] for r in runs] == [{"total": 2, "started": 1}] and run == runs
    assert frame[0]["input"] == "b" and first[0]["index"] == 0
    owner = (frame[0]["owner_node"], frame[0]["owner_progress"])
    assert owner == ("fan_out1", {"total": 2, "started": 1})
    assert [step["status"] for step in unsettled] == ["pending"]
    assert (last, done, position) == ([{"output": "done"}], [{"count_1": 1}], [{"anon_1": 2}])
    assert agents == [{"agent_id": "summarizer"}] * 2
    assert through_psycopg[11] == [{"facts": ["Morse, 1844"]}]
    assert in_scopes[0]["checks"] == [{"name": "cites", "ok": True, "reason": "", "attempt": 1}]
    frames, changed = through_psycopg[12:]
    assert [f["status"] for f in frames] == ["running", "running"]
    assert changed[0]["progress"] == {"total": 2}


def test_an_error_rolls_the_whole_transaction_back(postgres_url: str) -> None:
    migrate(postgres_url)
    tag = f"r{uuid.uuid4().hex[:8]}"
    row = {"id": tag, "team": "t", "name": "seq", "input": "x", "created_at": T0, "updated_at": T0}
    with pytest.raises(RuntimeError), transaction(postgres_url) as tx:
        tx.run(statements.INSERT_WORKFLOW, row)
        raise RuntimeError("the caller failed after its first statement")
    lock = {"w_id": tag, "updated_at": T0, "add_cost": 0}
    with transaction(postgres_url) as tx:
        assert tx.run(statements.LOCK_WORKFLOW, lock).one_or_none() is None


def test_a_connection_the_server_dropped_is_not_handed_out_again(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    migrate(postgres_url)
    # An engine of this test's own, so that its pool holds just the connection we break.
    url = make_url(postgres_url).update_query_dict({"application_name": uuid.uuid4().hex[:12]})
    own = url.render_as_string(hide_password=False)
    who = text("SELECT pg_backend_pid()")
    with transaction(own) as tx:
        pid = tx.run(who, {}).scalar()
    with engine_for(postgres_url).connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    with pytest.raises(psycopg.OperationalError), transaction(own) as tx:
        tx.run(who, {})
    # Discarded on purpose, not found broken by the pool's reset (which would log an error).
    assert not [r for r in caplog.records if r.name.startswith("sqlalchemy.pool")]

    with transaction(own) as tx:  # a fresh connection, not the dead one
        assert tx.run(who, {}).scalar() != pid
    engine_for(own).dispose()
