"""Prompt caching: what a 6-iteration loop costs with its agents' ``prompt_cache`` off and on.

    python -m bench.caching [--no-summary]      (or: python bench/caching.py)

What runs (the team is bench/caching_team.py; every agent on claude-sonnet-4-5):

- a fresh PostgreSQL database and Redis key prefix of this run's own (both removed at the end),
  and agentyard's stub of the Messages API in this process, which simulates the prompt cache as
  the real API does (at least 1024 tokens cached, about four characters a token, 5-minute TTL)
  and reports cache writes and reads in each call's usage;
- a real ``agentyard worker bench.caching_team:orc --all-agents --coordinator`` process with the
  loops' agents on ``prompt_cache=False`` (the baseline), then a fresh one with
  ``prompt_cache=True``; every call goes through the real ``anthropic`` SDK to the stub;
- with each: (1) ``loop6``, the researcher then a loop of a writer (a house style guide of ~1,800
  tokens as its system prompt) and a critic (a review rubric of ~1,500 tokens), which never
  approves: six iterations, 13 calls; and, unless ``--no-summary``, (2) ``summarized``, the
  researcher, an outliner, then the same loop with a writer whose ``context_tokens`` cannot hold
  the research notes in full: the run's summarizer summarizes them once, and each iteration's
  prompt opens with that summary (the preamble, the second cache breakpoint);
- before each run the stub is reset (``POST /_stub/reset``: a cold cache) and scripted to answer
  the researcher's call with research notes of ~1,100 tokens; every other reply is the stub's own
  (deterministic).

Prints, per run, the run's cost, its input / cache-write / cache-read / output tokens (summed over
its steps), the same by agent, and the stub's counts; then, per workflow, the cost with the cache
against the cost without it and the saving, for the whole run and for the loop's 12 steps alone.
Nothing here is timed. Writes bench/results/caching.json.

The stub's own replies are short (about 64 tokens), so the writer's drafts and the critic's
verdicts cost little output and add little to later prompts; with drafts of real length the
saving in dollars stays about the same (the cache saves on the system prompts and the summary),
but it is a smaller share of a dearer run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402  (needs the path set above)
    add_server_options,
    bench_run,
    start_workers,
    worker_processes,
    write_results,
)

RESULTS = ROOT / "bench" / "results"
TEAM = "bench.caching_team:orc"
MODES = (("off", False), ("on", True))  # the baseline first
LOOP_AGENTS = ("writer", "tight_writer", "critic")


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--no-summary", action="store_true", help="run only loop6, not the summarized workflow"
    )
    p.add_argument("--loglevel", default="WARNING", help="of the worker")
    add_server_options(p)
    p.add_argument("--keep-db", action="store_true", help="do not drop the bench database")
    p.add_argument("--output", type=Path, default=RESULTS / "caching.json")
    return p.parse_args()


def _stub_call(base_url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """GET (no body) or POST one of the stub's own endpoints (``/_stub/...``)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base_url.rstrip("/") + path, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def _by_agent(steps: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Calls, tokens and cost of a run's steps, by agent."""
    rows: dict[str, dict[str, Any]] = {}
    for step in steps:
        row = rows.setdefault(
            step.agent,
            {"calls": 0, "input": 0, "cache_write": 0, "cache_read": 0, "output": 0, "cost": 0.0},
        )
        row["calls"] += 1
        row["input"] += step.tokens.input
        row["cache_write"] += step.tokens.cache_creation
        row["cache_read"] += step.tokens.cache_read
        row["output"] += step.tokens.output
        row["cost"] += step.cost_usd
    return rows


def one_run(orc: Any, team: Any, stub_url: str, workflow: str, mode: str) -> dict[str, Any]:
    """One run of ``workflow`` on a cold stub; what it cost, in dollars and tokens."""
    _stub_call(stub_url, "/_stub/reset", {})
    _stub_call(stub_url, "/_stub/script", {"responses": [{"text": team.RESEARCH_NOTES}]})
    run = orc.submit(workflow, team.REQUEST)
    result = run.wait(timeout=300, poll_s=0.1)
    stats = _stub_call(stub_url, "/_stub/stats")
    if result.status.value != "succeeded":
        raise SystemExit(
            f"{workflow} (prompt_cache {mode}) ended {result.status.value}: {result.error}"
        )
    loops = [(lp.iterations, lp.stopped_by) for lp in result.loops]
    if loops != [(team.ITERATIONS, "max_iterations")]:
        raise SystemExit(
            f"{workflow} (prompt_cache {mode}): the loop ran {loops} (iterations, stopped by), not "
            f"{team.ITERATIONS} iterations stopped by max_iterations; the comparison would not be "
            "of the same work"
        )
    researcher = next(s for s in result.steps if s.agent == "researcher")
    if researcher.output != team.RESEARCH_NOTES:
        raise SystemExit(
            f"{workflow} (prompt_cache {mode}): the researcher's call was not scripted"
        )
    tokens = result.tokens
    return {
        "workflow": workflow,
        "prompt_cache": mode,
        "run_id": run.id,
        "cost_usd": result.cost_usd,
        "tokens": {
            "input": tokens.input,
            "cache_write": tokens.cache_creation,
            "cache_read": tokens.cache_read,
            "output": tokens.output,
            "prompt_in_all": tokens.input + tokens.cache_creation + tokens.cache_read,
        },
        "steps": len(result.steps),
        "by_agent": _by_agent(result.steps),
        "stub": {
            k: stats[k] for k in ("calls", "cache_writes", "cache_reads", "count_tokens_calls")
        },
    }


def _run_of(runs: list[dict[str, Any]], workflow: str, mode: str) -> dict[str, Any]:
    return next(r for r in runs if (r["workflow"], r["prompt_cache"]) == (workflow, mode))


def _loop_cost(r: dict[str, Any]) -> float:
    """What the steps of the run's loop cost (its writer's and critic's)."""
    return sum(a["cost"] for agent, a in r["by_agent"].items() if agent in LOOP_AGENTS)


def _print_run(r: dict[str, Any]) -> None:
    t, s = r["tokens"], r["stub"]
    print(
        f"{r['workflow']:<10} prompt_cache {r['prompt_cache']:>3}: ${r['cost_usd']:.6f} | input "
        f"{t['input']:>6} cache write {t['cache_write']:>6} cache read {t['cache_read']:>6} "
        f"output {t['output']:>5} tokens | {r['steps']} steps | stub: {s['calls']} calls, "
        f"cache_writes {s['cache_writes']}, cache_reads {s['cache_reads']}",
        flush=True,
    )
    for agent, a in r["by_agent"].items():
        print(
            f"    {agent:<13} {a['calls']:>2} call(s): input {a['input']:>6} cache write "
            f"{a['cache_write']:>5} cache read {a['cache_read']:>6} output {a['output']:>5} "
            f"${a['cost']:.6f}"
        )


def main() -> int:
    args = _parse()
    from workers.stub_anthropic import StubAnthropicServer

    workflows = ["loop6"] if args.no_summary else ["loop6", "summarized"]
    runs: list[dict[str, Any]] = []
    with (
        StubAnthropicServer() as stub,
        bench_run(args.postgres_url, args.redis_url, stem="caching", keep_db=args.keep_db) as run,
    ):
        env = {
            "AGENTYARD_REDIS_URL": args.redis_url,
            "AGENTYARD_DATABASE_URL": run.database_url,
            "AGENTYARD_REDIS_KEY_PREFIX": run.prefix,
            "AGENTYARD_ANTHROPIC_BASE_URL": stub.base_url,
            "AGENTYARD_ANTHROPIC_API_KEY": "sk-bench",
            "AGENTYARD_LOG_LEVEL": args.loglevel,
            # context budgets counted as the provider counts (the stub: four characters a token)
            "AGENTYARD_COUNT_TOKENS": "api",
        }
        os.environ.update(env)
        import importlib

        # This process only submits runs and reads them back: the worker's agents make the calls,
        # with the prompt_cache of its own BENCH_PROMPT_CACHE.
        team = importlib.import_module("bench.caching_team")
        orc = team.orc
        queues = ["coordinator", *(agent.queue for agent in orc.team.agents.values())]
        print(f"bench run {run.id}: stub at {stub.base_url}, model {team.MODEL}", flush=True)
        for mode, cache in MODES:
            worker = worker_processes(
                TEAM,
                ["--all-agents", "--coordinator"],
                count=1,
                concurrency=4,
                loglevel=args.loglevel,
                name=f"caching-{mode}",
                env={**env, "BENCH_PROMPT_CACHE": "1" if cache else "0"},
                logs=RESULTS / "logs",
            )
            run.workers.extend(worker)
            start_workers(orc, worker, queues)
            try:
                for workflow in workflows:
                    result = one_run(orc, team, stub.base_url, workflow, mode)
                    runs.append(result)
                    _print_run(result)
            finally:
                worker[0].stop(grace_s=15)
        orc.close()

    print()
    print(
        "| workflow | prompt_cache | cost (USD) | input | cache write | cache read | output "
        "| stub cache_writes | stub cache_reads |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in runs:
        t, s = r["tokens"], r["stub"]
        print(
            f"| {r['workflow']} | {r['prompt_cache']} | {r['cost_usd']:.6f} | {t['input']} | "
            f"{t['cache_write']} | {t['cache_read']} | {t['output']} | {s['cache_writes']} | "
            f"{s['cache_reads']} |"
        )
    print()
    ratios: dict[str, Any] = {}
    for workflow in workflows:
        off, on = (_run_of(runs, workflow, mode) for mode, _ in MODES)
        ratio = on["cost_usd"] / off["cost_usd"]
        loop_off, loop_on = (_loop_cost(r) for r in (off, on))
        loop_ratio = loop_on / loop_off
        ratios[workflow] = {
            "cached_over_uncached_cost": round(ratio, 4),
            "saving_percent": round((1 - ratio) * 100, 1),
            "loop_steps_cached_over_uncached_cost": round(loop_ratio, 4),
            "loop_steps_saving_percent": round((1 - loop_ratio) * 100, 1),
            "prompt_tokens_uncached": off["tokens"]["prompt_in_all"],
            "prompt_tokens_cached": on["tokens"]["prompt_in_all"],
        }
        print(
            f"{workflow}: cached / uncached cost {ratio:.3f} (${on['cost_usd']:.6f} / "
            f"${off['cost_usd']:.6f}), saving {(1 - ratio) * 100:.1f}%; the loop's 12 steps "
            f"alone {loop_ratio:.3f} (${loop_on:.6f} / ${loop_off:.6f}), saving "
            f"{(1 - loop_ratio) * 100:.1f}%; prompt tokens in all {on['tokens']['prompt_in_all']} "
            f"cached, {off['tokens']['prompt_in_all']} uncached"
        )
    write_results(args.output, args, runs=runs, ratios=ratios)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
