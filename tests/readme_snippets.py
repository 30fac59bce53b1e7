"""The README's code blocks, read the way the snippet test runs them.

Every fenced block of README.md is one of:

- ```` ```python ````: run, in one Python session shared by all the Python blocks, in order;
- ```` ```sh ````: run line by line, each line a command that must exit 0;
- ```` ```text ````: output or a drawing, never run.

Any other block, a bare ```` ``` ```` included, must be marked. A marker is an HTML comment on the
line right before the block (GitHub does not show it); several may be stacked:

- ``<!-- snippet: skip (why) -->``: the block is not run, for the reason given;
- ``<!-- snippet: skip "make test" (why) -->``: its lines that start with ``make test`` are not
  run, the others are;
- ``<!-- snippet: file team.py -->``: the block is the file ``team.py``, written, not run;
- ``<!-- snippet: append team.py -->``: the block is added to the end of ``team.py``.

A Python block whose first line is ``# team.py`` is that file, as if marked ``file team.py``; one
whose first line is ``# team.py, continued`` is added to it. A reason is never optional: a block
that is not run says why.

A shell line is a command (run, it must exit 0, or N when its comment says ``exits N``),
``export NAME=VALUE`` (for every later line and Python block, as in one shell), or a long-running
process (``agentyard worker``, ``agentyard flower``, ``agentyard stub-anthropic``, ``celery ...
worker``; with or without a trailing ``&``), which the test starts in the background and waits
for.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

RUN = ("python", "sh")
NOT_RUN = ("text",)

_FENCE = re.compile(r"^```(?P<info>\S*)\s*$")
_MARKER = re.compile(r"^<!--\s*snippet:\s*(?P<body>.*?)\s*-->\s*$")
_SKIP = re.compile(r'^skip(?:\s+"(?P<lines>[^"]+)")?\s+\((?P<reason>[^)]*\S[^)]*)\)$')
_SAVE = re.compile(r"^(?P<how>file|append)\s+(?P<path>[\w./-]+)$")
_FIRST_LINE = re.compile(r"^#\s*(?P<path>[\w./-]+\.py)(?P<continued>,\s*continued\b.*)?\s*$")
_EXITS = re.compile(r"\bexits (?P<code>\d+)\b")
_EXPORT = re.compile(r"^export\s+(?P<name>[A-Za-z_]\w*)=(?P<value>.*)$")


class ReadmeError(ValueError):
    """The README holds a block the snippet test cannot run and that says nothing about why.

    (A plain ValueError: it is a test's finding about the README, not an error agentyard's users
    meet.)"""


@dataclass(frozen=True, slots=True)
class Skip:
    """Not run, for ``reason``: the whole block, or its lines that start with ``lines``."""

    reason: str
    lines: str | None = None


@dataclass(frozen=True, slots=True)
class SaveAs:
    """The block is the file ``path`` (added to its end with ``append``)."""

    path: str
    append: bool = False


Marker = Skip | SaveAs


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block: its language, its text, the README line of its opening fence, and the
    markers right before it."""

    language: str
    code: str
    line: int
    markers: tuple[Marker, ...] = ()


# -- what the test does with them ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PythonCode:
    code: str
    line: int


@dataclass(frozen=True, slots=True)
class WriteFile:
    path: str
    code: str
    append: bool
    line: int


@dataclass(frozen=True, slots=True)
class Command:
    """A shell command that runs to its end and must exit with ``exit_code``: 0, unless its
    comment says otherwise (``agentyard status nope   # exits 4: no such run``)."""

    command: str
    line: int
    exit_code: int = 0


@dataclass(frozen=True, slots=True)
class Export:
    name: str
    value: str
    line: int


@dataclass(frozen=True, slots=True)
class Background:
    """A long-running process: ``kind`` is ``worker``, ``flower`` or ``stub``; ``module`` the
    team module it imports (None for the stub)."""

    command: str
    kind: str
    module: str | None
    line: int


@dataclass(frozen=True, slots=True)
class Skipped:
    what: str
    reason: str
    line: int


Step = PythonCode | WriteFile | Command | Export | Background | Skipped


def read_blocks(markdown: str) -> list[Block]:
    """Every fenced block of ``markdown``, with its markers; refuses a marker that is not right
    before a block, and one it cannot read."""
    blocks: list[Block] = []
    pending: list[tuple[Marker, int]] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        text, number = lines[index], index + 1
        marker = _MARKER.match(text.strip())
        fence = _FENCE.match(text)
        if marker:
            pending.append((_marker(marker["body"], number), number))
        elif fence:
            end = index + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            if end == len(lines):
                raise ReadmeError(f"line {number}: this block is never closed with ```")
            code = "\n".join(lines[index + 1 : end]) + "\n"
            blocks.append(Block(fence["info"], code, number, tuple(m for m, _ in pending)))
            pending = []
            index = end
        elif pending:
            raise ReadmeError(
                f"line {pending[0][1]}: a snippet marker must be on the line right before the "
                f"block it is about; line {number} comes between"
            )
        index += 1
    if pending:
        raise ReadmeError(f"line {pending[0][1]}: a snippet marker with no block after it")
    return blocks


def _marker(body: str, number: int) -> Marker:
    if skip := _SKIP.match(body):
        return Skip(skip["reason"].strip(), skip["lines"])
    if save := _SAVE.match(body):
        return SaveAs(save["path"], append=save["how"] == "append")
    raise ReadmeError(
        f'line {number}: cannot read the marker {body!r}; write `skip (why)`, `skip "PREFIX" '
        "(why)`, `file NAME` or `append NAME`"
    )


def plan(blocks: list[Block]) -> list[Step]:
    """What the test does, in order: every block run, written or skipped with its reason.
    Refuses a block that is neither runnable nor marked."""
    steps: list[Step] = []
    for block in blocks:
        steps.extend(_steps_of(block))
    return steps


def _steps_of(block: Block) -> list[Step]:
    whole = [m for m in block.markers if isinstance(m, Skip) and m.lines is None]
    if whole:
        return [Skipped(f"```{block.language} block", whole[0].reason, block.line)]
    saves = [m for m in block.markers if isinstance(m, SaveAs)]
    first = _FIRST_LINE.match(block.code.splitlines()[0]) if block.code.strip() else None
    if not saves and first and block.language == "python":
        saves = [SaveAs(first["path"], append=first["continued"] is not None)]
    if saves:
        return [WriteFile(saves[0].path, block.code, saves[0].append, block.line)]
    if block.language in NOT_RUN:
        return []
    if block.language == "python":
        return [PythonCode(block.code, block.line)]
    if block.language == "sh":
        skips = [m for m in block.markers if isinstance(m, Skip)]
        return shell_steps(block.code, block.line, skips)
    shown = f"```{block.language}" if block.language else "a bare ```"
    raise ReadmeError(
        f"line {block.line}: {shown} block is neither run nor marked; make it ```python, "
        "```sh or ```text (output), or put `<!-- snippet: skip (why) -->` before it"
    )


def shell_steps(code: str, first_line: int, skips: list[Skip] | None = None) -> list[Step]:
    """The steps of a ```sh block whose opening fence is on ``first_line``: one per command
    (lines ending in a backslash are joined), comment lines and blank lines left out."""
    steps: list[Step] = []
    pending = ""
    start = 0
    for offset, raw in enumerate(code.splitlines(), start=1):
        if not pending:
            start = first_line + offset
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        text = (pending + raw).strip()
        pending = ""
        if not text or text.startswith("#"):
            continue
        skip = next((s for s in skips or [] if s.lines and text.startswith(s.lines)), None)
        if skip is not None:
            steps.append(Skipped(text, skip.reason, start))
        else:
            steps.append(shell_step(text, start))
    return steps


def shell_step(text: str, line: int) -> Command | Export | Background:
    """What one shell line is: an export, a long-running process, or a command."""
    if export := _EXPORT.match(text):
        values = shlex.split(export["value"], comments=True)
        if len(values) > 1:
            raise ReadmeError(f"line {line}: quote the value of {export['name']} ({text!r})")
        return Export(export["name"], values[0] if values else "", line)
    words = shlex.split(text, comments=True)
    background = bool(words) and words[-1] == "&"
    if background:
        words = words[:-1]
    if "&" in words:
        raise ReadmeError(
            f"line {line}: {text!r} starts more than one process; the test starts one per line "
            "(or mark the block `skip (why)`)"
        )
    kind, module = _long_running(words)
    if kind is not None:
        return Background(shlex.join(words), kind, module, line)
    if background:
        raise ReadmeError(
            f"line {line}: {text!r} is sent to the background, but the test does not know how to "
            "tell when it is ready; run it in the foreground"
        )
    said = _EXITS.search(text.partition(" #")[2])
    return Command(text, line, int(said["code"]) if said else 0)


def _long_running(words: list[str]) -> tuple[str | None, str | None]:
    if words[:2] == ["agentyard", "worker"]:
        return "worker", _module(words[2] if len(words) > 2 else "")
    if words[:2] == ["agentyard", "flower"]:
        return "flower", _module(words[2] if len(words) > 2 else "")
    if words[:2] == ["agentyard", "stub-anthropic"]:
        return "stub", None
    if words[:1] == ["celery"] and "worker" in words:
        app = words[words.index("-A") + 1] if "-A" in words[:-1] else ""
        return "worker", _module(app)
    return None, None


def _module(team: str) -> str | None:
    """``team:orc`` -> ``team``: the module a process imports."""
    return team.partition(":")[0] or None


def readme_plan(path: Path) -> list[Step]:
    return plan(read_blocks(path.read_text(encoding="utf-8")))


def configuration_rows(markdown: str) -> list[tuple[list[str], str]]:
    """Each row of the configuration table (the one under ``## Configuration``): the
    ``AGENTYARD_*`` names of its first column, and its default cell."""
    section = markdown.partition("\n## Configuration\n")[2].partition("\n## ")[0]
    rows: list[tuple[list[str], str]] = []
    for row in section.splitlines():
        cells = row.split("|")
        if row.startswith("| `") and len(cells) >= 4:
            rows.append((re.findall(r"`(AGENTYARD_[A-Z0-9_]+)`", cells[1]), cells[2].strip()))
    return rows
