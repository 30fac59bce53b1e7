"""Summarise py-spy ``--format raw`` files (collapsed stacks) from ``overhead.py --py-spy``.

    python bench/spy_summary.py bench/results/logs/py-spy-*.txt [--top 30] [--under FUNC]

Prints: where samples fall (Celery consumer loop vs. task bodies, by task), the inclusive share of
notable agentyard / SQLAlchemy / psycopg / kombu / pydantic / structlog frames, and the top
functions by self time (the leaf frame). The bench samples with ``--gil`` (the thread holding the
GIL only), so shares approximate the CPU spent in Python and in C called with the GIL held.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")


def _frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for part in stack.split(";"):
        m = _FRAME.match(part.strip())
        out.append((m["func"], m["file"]) if m else (part.strip(), ""))
    return out


def _module(file: str) -> str:
    file = file.replace("\\", "/")
    if "site-packages/" in file:
        file = file.split("site-packages/", 1)[1]
    if file.startswith("<frozen"):
        return file
    top = file.split("/", 1)[0]
    return top.removesuffix(".py")


# Inclusive buckets: a sample counts in every bucket one of its frames matches.
BUCKETS: list[tuple[str, re.Pattern[str]]] = [
    ("task body: agent step (StepRunner.run)", re.compile(r"^StepRunner\.run$")),
    ("  claim (Claims.claim)", re.compile(r"^Claims\.claim$")),
    ("  admit (Admission.admit)", re.compile(r"^Admission\.admit$")),
    ("  call (ModelCalls.call)", re.compile(r"^ModelCalls\.call$")),
    ("  record (Records.once: the result transaction)", re.compile(r"^Records\.once$")),
    ("  route (Routing.route)", re.compile(r"^Routing\.route$")),
    ("  offline provider complete()", re.compile(r"^OfflineProvider\.complete$")),
    ("task body: Coordinator.advance", re.compile(r"^Coordinator\.advance$")),
    ("Bus.route (send_task)", re.compile(r"^Bus\.route$")),
    ("  Bus._send (send_task)", re.compile(r"^Bus\._send$")),
    ("session.commit / flush", re.compile(r"^Session\.(commit|flush)$")),
    ("session_scope exit/enter", re.compile(r"^session_scope$")),
    ("psycopg (driver, any)", re.compile(r"^(Cursor|Connection|BaseCursor|BaseConnection)\..*")),
    (
        "pydantic (validate/dump)",
        re.compile(r"^(BaseModel\.(model_validate|model_dump|__init__)|AgentMessage\..*)$"),
    ),
    (
        "structlog / logging",
        re.compile(
            r"^(BoundLoggerLazyProxy|_make_filtering_bound_logger|.*_log|PrintLogger\.msg|JSONRenderer.*|Logger\._log)"
        ),
    ),
    (
        "celery tracer (trace_task)",
        re.compile(r"^(build_tracer\.<locals>\.trace_task|trace_task)$"),
    ),
    ("celery send_task (any caller)", re.compile(r"^Celery\.send_task$")),
    ("celery event dispatch", re.compile(r"^EventDispatcher\.(send|publish)$")),
    ("kombu consumer loop (asynloop)", re.compile(r"^asynloop$")),
]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--under", help="only samples with a frame whose function matches this regex")
    args = p.parse_args()
    under = re.compile(args.under) if args.under else None

    total = 0
    buckets: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    leaf_module: Counter[str] = Counter()
    for path in args.files:
        for raw in path.read_text().splitlines():
            stack, _, count = raw.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = _frames(stack)
            if under and not any(under.search(f) for f, _ in frames):
                continue
            total += n
            funcs = {f for f, _ in frames}
            for name, pattern in BUCKETS:
                if any(pattern.search(f) for f in funcs):
                    buckets[name] += n
            func, file = frames[-1]
            leaf[f"{func} ({_module(file)})"] += n
            leaf_module[_module(file)] += n
    print(f"{total} active samples")
    print("\ninclusive share:")
    for name, _ in BUCKETS:
        print(f"  {100 * buckets[name] / max(total, 1):5.1f}%  {name}")
    print("\nself time by module (leaf frame):")
    for name, n in leaf_module.most_common(15):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print(f"\ntop {args.top} functions by self time:")
    for name, n in leaf.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
