"""Finding runs by what an agent cost in them, or by how long they took: the queries
(``orchestration.trace_queries``), ``orc.runs`` and ``agentyard find``, on SQLite."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest

from orchestration import InvalidRequest, Orchestrator, WorkflowStatus, cli
from orchestration.trace_queries import RunQuery, find_runs
from storage.db import migrate, session_scope
from storage.models import utcnow
from tests.conftest import TeamFactory
from tests.support import commands_read
from tests.trace_support import record_run, run_to_the_end, trace_team_members

NOW = datetime.fromisoformat("2025-03-10T12:00:00+00:00")


def _ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.fixture
def url(sqlite_url: str) -> str:
    migrate(sqlite_url)
    return sqlite_url


def _ids(found: list) -> list[str]:  # type: ignore[type-arg]
    return [run.id for run in found]


# -- an agent's cost -------------------------------------------------------------------------------


def test_runs_where_an_agent_cost_more_than_x_count_its_failed_attempts_too(url: str) -> None:
    with session_scope(url) as session:
        retried = record_run(
            session,
            created_at=_ago(60),
            finished_at=_ago(50),
            calls=(("writer", 30_000, "timeout"), ("writer", 30_000, "succeeded")),
        )
        record_run(  # once, under the line
            session,
            created_at=_ago(60),
            finished_at=_ago(50),
            calls=(("writer", 40_000, "succeeded"),),
        )
        record_run(  # the run cost more, but not the writer
            session,
            created_at=_ago(60),
            finished_at=_ago(50),
            calls=(("editor", 90_000, "succeeded"), ("writer", 10_000, "succeeded")),
        )

    found = find_runs(url, RunQuery(agent="writer", cost_over_usd=0.05), now=NOW)

    assert _ids(found) == [retried]
    (run,) = found
    assert (run.agent, run.agent_cost_micro, run.agent_calls, run.cost_micro) == (
        "writer",
        60_000,
        2,
        60_000,
    )
    assert run.agent_cost_usd == pytest.approx(0.06)


def test_the_costliest_runs_for_the_agent_come_first_up_to_the_limit(url: str) -> None:
    with session_scope(url) as session:
        ids = {
            cost: record_run(session, created_at=_ago(100), calls=(("writer", cost, "succeeded"),))
            for cost in (70_000, 90_000, 80_000)
        }

    found = find_runs(url, RunQuery(agent="writer", cost_over_usd=0.05, limit=2), now=NOW)

    assert _ids(found) == [ids[90_000], ids[80_000]]


def test_without_an_agent_the_cost_is_the_whole_runs(url: str) -> None:
    with session_scope(url) as session:
        dear = record_run(
            session,
            created_at=_ago(10),
            calls=(("editor", 40_000, "succeeded"), ("writer", 40_000, "succeeded")),
        )
        record_run(session, created_at=_ago(10), calls=(("writer", 40_000, "succeeded"),))

    assert _ids(find_runs(url, RunQuery(cost_over_usd=0.05), now=NOW)) == [dear]


# -- duration --------------------------------------------------------------------------------------


def test_slower_than_measures_finished_runs_to_their_end_and_running_ones_to_now(
    url: str,
) -> None:
    with session_scope(url) as session:
        slow = record_run(session, created_at=_ago(100), finished_at=_ago(60))  # took 40 s
        record_run(session, created_at=_ago(100), finished_at=_ago(90))  # took 10 s
        stuck = record_run(session, created_at=_ago(45))  # running for 45 s
        record_run(session, created_at=_ago(5))  # running for 5 s

    found = find_runs(url, RunQuery(slower_than_s=30), now=NOW)

    assert _ids(found) == [stuck, slow]  # the slowest first
    assert [run.finished for run in found] == [False, True]
    assert [run.duration_s for run in found] == pytest.approx([45.0, 40.0], abs=1e-3)


def test_conditions_given_together_must_all_hold(url: str) -> None:
    with session_scope(url) as session:
        both = record_run(
            session,
            created_at=_ago(100),
            finished_at=_ago(50),
            calls=(("writer", 90_000, "succeeded"),),
        )
        record_run(  # slow, cheap
            session,
            created_at=_ago(100),
            finished_at=_ago(50),
            calls=(("writer", 1_000, "succeeded"),),
        )
        record_run(  # dear, quick
            session,
            created_at=_ago(100),
            finished_at=_ago(99),
            calls=(("writer", 90_000, "succeeded"),),
        )

    query = RunQuery(agent="writer", cost_over_usd=0.05, slower_than_s=30)
    assert _ids(find_runs(url, query, now=NOW)) == [both]


# -- which runs are looked at ----------------------------------------------------------------------


def test_only_runs_created_in_the_window_of_the_team_and_workflow_asked_for_are_found(
    url: str,
) -> None:
    calls = (("writer", 90_000, "succeeded"),)
    with session_scope(url) as session:
        recent = record_run(session, created_at=_ago(3600), calls=calls)
        old = record_run(session, created_at=NOW - timedelta(days=8), calls=calls)
        other_team = record_run(session, team="other", created_at=_ago(3600), calls=calls)
        other_flow = record_run(session, name="summary", created_at=_ago(3600), calls=calls)

    def found(**where: object) -> set[str]:
        query = RunQuery(agent="writer", cost_over_usd=0.05, **where)  # type: ignore[arg-type]
        return set(_ids(find_runs(url, query, now=NOW)))

    assert found() == {recent, other_team, other_flow}  # the last 7 days, every team
    assert found(since=timedelta(days=10)) == {recent, old, other_team, other_flow}
    assert found(since=NOW - timedelta(hours=2)) == {recent, other_team, other_flow}
    assert found(team="unit") == {recent, other_flow}
    assert found(team="unit", workflow="research") == {recent}


def test_a_query_that_cannot_mean_anything_is_refused_saying_why() -> None:
    with pytest.raises(InvalidRequest, match="limit must be at least 1"):
        RunQuery(slower_than_s=1, limit=0)
    with pytest.raises(InvalidRequest, match="USD, 0 or more"):
        RunQuery(agent="writer", cost_over_usd=-1)
    with pytest.raises(InvalidRequest, match="seconds, 0 or more"):
        RunQuery(slower_than_s=float("nan"))
    with pytest.raises(InvalidRequest, match="reach back a positive time"):
        RunQuery(slower_than_s=1, since=timedelta(0))


def test_a_query_says_in_words_what_it_looks_for() -> None:
    query = RunQuery(agent="writer", cost_over_usd=0.05, slower_than_s=30, team="unit")
    assert query.describe() == (
        "of team 'unit' where agent 'writer' cost more than $0.050000 and that took longer "
        "than 30s, created in the last 7 days"
    )
    assert RunQuery(slower_than_s=2.5, since=timedelta(hours=12)).describe() == (
        "of every team that took longer than 2.5s, created in the last 12 hours"
    )


# -- from the Orchestrator, on real runs ---------------------------------------------------------


@pytest.fixture
def team_runs(inline_team: TeamFactory) -> tuple[Orchestrator, str, str]:
    agents, workflows = trace_team_members()
    orc, bus = inline_team(*agents, workflows=workflows)
    research = run_to_the_end(orc, bus, "research", "the telegraph")
    doomed = run_to_the_end(orc, bus, "doomed", "the telephone")
    assert research.status is WorkflowStatus.SUCCEEDED
    return orc, research.id, doomed.id


def test_the_orchestrator_finds_its_own_runs_by_an_agents_cost(
    team_runs: tuple[Orchestrator, str, str],
) -> None:
    orc, research, _ = team_runs
    editor_cost = orc.runs.trace(research).cost_of("editor")
    with session_scope(orc.database_url) as session:
        record_run(
            session, team="other", created_at=utcnow(), calls=(("editor", 10**6, "succeeded"),)
        )

    (found,) = orc.runs.where_agent_cost_over("editor", editor_cost / 1e6 / 2)

    assert (found.id, found.team, found.agent_cost_micro) == (research, "unit", editor_cost)
    assert orc.runs.where_agent_cost_over("editor", editor_cost / 1e6) == []  # more than, not =
    assert orc.runs.where_agent_cost_over("editor", 0, workflow="doomed") == []


def test_the_orchestrator_finds_its_own_runs_slower_than_y(
    team_runs: tuple[Orchestrator, str, str],
) -> None:
    orc, research, doomed = team_runs
    took = {run: orc.runs.trace(run).duration_s() for run in (research, doomed)}

    found = orc.runs.slower_than(0)

    assert {run.id: run.duration_s for run in found} == pytest.approx(took, abs=1e-3)
    assert orc.runs.slower_than(max(took.values()) + 60) == []


# -- agentyard find --------------------------------------------------------------------------------


def _table(out: str) -> tuple[str, list[dict[str, str]]]:
    title, *lines = out.splitlines()
    if not lines:
        return title, []
    header, *rows = lines
    names = re.split(r"\s{2,}", header.strip())
    return title, [dict(zip(names, re.split(r"\s{2,}", r.strip()), strict=True)) for r in rows]


def test_the_find_command_lists_runs_where_an_agent_cost_more_than_x(
    team_runs: tuple[Orchestrator, str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    orc, research, _ = team_runs
    monkeypatch.setattr("orchestration.loader.load_orchestrator", lambda _spec: orc)
    trace = orc.runs.trace(research)

    assert cli.main(["find", "unit:orc", "--agent", "editor", "--cost-over", "0.0001"]) == 0

    title, rows = _table(capsys.readouterr().out)
    assert title == (
        "1 run(s) of team 'unit' where agent 'editor' cost more than $0.000100, "
        "created in the last 7 days"
    )
    (row,) = rows
    assert (row["RUN"], row["WORKFLOW"], row["STATUS"]) == (research, "research", "succeeded")
    assert row["COST"] == f"${trace.cost_micro / 1e6:.6f}"
    assert row["COST OF EDITOR"] == f"${trace.cost_of('editor') / 1e6:.6f} in 1 call(s)"


def test_the_find_command_lists_slow_runs_and_says_which_are_still_running(
    inline_team: TeamFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    orc, _ = inline_team(*trace_team_members()[0])
    orc.ensure_ready()
    with session_scope(orc.database_url) as session:
        now = utcnow()
        finished = record_run(
            session, created_at=now - timedelta(seconds=90), finished_at=now - timedelta(seconds=50)
        )
        running = record_run(session, created_at=now - timedelta(hours=2))
    commands_read(monkeypatch, orc)

    assert cli.main(["find", "--slower-than", "30", "--since", "1d"]) == 0

    title, rows = _table(capsys.readouterr().out)
    assert title == "2 run(s) of every team that took longer than 30s, created in the last 1 day"
    assert [(r["RUN"], r["STATUS"]) for r in rows] == [
        (running, "running"),
        (finished, "succeeded"),
    ]
    assert rows[0]["DURATION"].endswith("s (running)")
    assert rows[1]["DURATION"] == "40.00s"


def test_the_find_command_prints_json_for_scripts(
    team_runs: tuple[Orchestrator, str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    orc, research, _ = team_runs
    monkeypatch.setattr("orchestration.loader.load_orchestrator", lambda _spec: orc)
    trace = orc.runs.trace(research)

    assert (
        cli.main(["find", "unit:orc", "--agent", "editor", "--cost-over", "0.0001", "--json"]) == 0
    )

    (run,) = json.loads(capsys.readouterr().out)
    assert (run["id"], run["team"], run["workflow"], run["status"]) == (
        research,
        "unit",
        "research",
        "succeeded",
    )
    assert run["finished"] is True and run["duration_s"] >= 0
    assert run["cost_usd"] == trace.cost_micro / 1e6
    assert (run["agent"], run["agent_cost_usd"], run["agent_calls"]) == (
        "editor",
        trace.cost_of("editor") / 1e6,
        1,
    )
    assert run["created_at"].endswith("+00:00")


def test_the_find_command_says_when_nothing_matches(
    team_runs: tuple[Orchestrator, str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    orc, _, _ = team_runs
    commands_read(monkeypatch, orc)

    assert cli.main(["find", "--agent", "writer", "--cost-over", "5"]) == 0

    assert capsys.readouterr().out == (
        "0 run(s) of every team where agent 'writer' cost more than $5.000000, "
        "created in the last 7 days\n"
    )


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--cost-over", "lots", "an amount in USD"),
        ("--slower-than", "-3", "a number of seconds"),
        ("--since", "last week", "a time window like 7d"),
        ("--limit", "0", "a whole number of at least 1"),
    ],
)
def test_the_find_command_refuses_a_bad_option_saying_what_it_takes(
    flag: str, value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["find", flag, value])

    assert exited.value.code == cli.ExitCode.USAGE
    assert says in capsys.readouterr().err
