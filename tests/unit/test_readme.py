"""The README's configuration table against the settings, and how the snippet test reads the
README's blocks (tests/readme_snippets.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.settings import Settings
from tests.readme_snippets import (
    Background,
    Command,
    Export,
    PythonCode,
    ReadmeError,
    Skipped,
    WriteFile,
    configuration_rows,
    plan,
    read_blocks,
    readme_plan,
    shell_steps,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def _table() -> list[tuple[list[str], str]]:
    return configuration_rows(README.read_text(encoding="utf-8"))


def _variable(field: str) -> str:
    return f"AGENTYARD_{field.upper()}"


# -- the exit codes --------------------------------------------------------------------------------


def test_the_readmes_exit_code_table_is_the_commands_own() -> None:
    from orchestration.cli.exit_codes import ExitCode

    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Exit codes") :]
    section = section[: section.index("\n#")]
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| ") and line[2:3].isdigit()
    ]
    assert [(int(code), name.strip("`")) for code, name, _ in rows] == [
        (code.value, code.name) for code in ExitCode
    ]


# -- the configuration table ---------------------------------------------------------------------


def test_every_setting_is_in_the_readmes_configuration_table() -> None:
    listed = {name for names, _ in _table() for name in names}

    missing = [_variable(f) for f in Settings.model_fields if _variable(f) not in listed]

    assert not missing, f"add these to the configuration table of README.md: {missing}"


def test_every_variable_of_the_configuration_table_is_a_setting() -> None:
    known = {_variable(f) for f in Settings.model_fields}

    stale = [name for names, _ in _table() for name in names if name not in known]

    assert not stale, f"the configuration table names settings that do not exist: {stale}"


def test_the_numbers_of_the_configuration_table_are_the_settings_defaults() -> None:
    # Given the rows whose default cell is one number (or true/false) per variable
    checked = 0
    for names, cell in _table():
        values = [v.strip().strip("`") for v in cell.split(",")]
        if len(values) != len(names) or not all(_literal(v) is not None for v in values):
            continue
        # Then each is its setting's default
        for name, value in zip(names, values, strict=True):
            field = Settings.model_fields[name.removeprefix("AGENTYARD_").lower()]
            assert _literal(value) == field.default, f"{name}: README says {value}"
            checked += 1
    assert checked >= 10, "the table's numeric defaults are no longer found"


def _literal(text: str) -> float | bool | None:
    if text in ("true", "false"):
        return text == "true"
    try:
        return float(text)
    except ValueError:
        return None


def test_the_configuration_table_is_read_from_its_section_only() -> None:
    markdown = (
        "| `AGENTYARD_ELSEWHERE` | 1 | not config |\n"
        "## Configuration\n\n| variable | default | meaning |\n|---|---|---|\n"
        "| `AGENTYARD_A_S`, `AGENTYARD_B` | 3, 4 | two |\n"
        "## Next\n| `AGENTYARD_AFTER` | 5 | not config |\n"
    )

    assert configuration_rows(markdown) == [(["AGENTYARD_A_S", "AGENTYARD_B"], "3, 4")]


# -- the README as the snippet test reads it -----------------------------------------------------


def test_every_block_of_the_readme_is_run_written_or_skipped_with_a_reason() -> None:
    steps = readme_plan(README)  # raises on a block that is neither runnable nor marked

    kinds = {type(s) for s in steps}
    assert {PythonCode, Command, Background, WriteFile, Export} <= kinds


# -- reading blocks ------------------------------------------------------------------------------


def test_python_and_shell_blocks_are_run_and_text_blocks_are_not() -> None:
    markdown = "```python\nx = 1\n```\n\n```sh\necho hi\n```\n\n```text\n$ out\n```\n"

    steps = plan(read_blocks(markdown))

    assert steps == [PythonCode("x = 1\n", 1), Command("echo hi", 6)]


def test_a_block_that_says_not_what_it_is_is_refused_with_its_line() -> None:
    markdown = "text\n\n```\nsomething\n```\n"

    with pytest.raises(ReadmeError, match="line 3: a bare ``` block is neither run nor marked"):
        plan(read_blocks(markdown))


def test_a_block_in_another_language_is_refused_unless_marked() -> None:
    with pytest.raises(ReadmeError, match="```toml block"):
        plan(read_blocks("```toml\na = 1\n```\n"))

    marked = "<!-- snippet: skip (a price file, not code) -->\n```toml\na = 1\n```\n"
    assert plan(read_blocks(marked)) == [Skipped("```toml block", "a price file, not code", 2)]


def test_a_skip_marker_skips_its_block_for_the_reason_it_gives() -> None:
    markdown = "<!-- snippet: skip (needs docker) -->\n```sh\ndocker run x\n```\n"

    assert plan(read_blocks(markdown)) == [Skipped("```sh block", "needs docker", 2)]


def test_a_skip_marker_without_a_reason_is_refused() -> None:
    for marker in ("<!-- snippet: skip -->", "<!-- snippet: skip () -->"):
        with pytest.raises(ReadmeError, match="line 1: cannot read the marker"):
            read_blocks(f"{marker}\n```sh\ndocker run x\n```\n")


def test_a_skip_marker_with_a_prefix_skips_only_the_lines_that_start_with_it() -> None:
    markdown = (
        '<!-- snippet: skip "make test" (runs the suite) -->\n'
        "```sh\nmake demo   # the demo\nmake test   # the suite\n```\n"
    )

    assert plan(read_blocks(markdown)) == [
        Command("make demo   # the demo", 3),
        Skipped("make test   # the suite", "runs the suite", 4),
    ]


def test_a_marker_must_be_right_before_its_block() -> None:
    with pytest.raises(ReadmeError, match="line 1: a snippet marker must be on the line right"):
        read_blocks("<!-- snippet: skip (why) -->\nprose\n```sh\nls\n```\n")
    with pytest.raises(ReadmeError, match="line 1: a snippet marker with no block after it"):
        read_blocks("<!-- snippet: skip (why) -->\n")


def test_a_block_never_closed_is_refused() -> None:
    with pytest.raises(ReadmeError, match="line 2: this block is never closed"):
        read_blocks("prose\n```python\nx = 1\n")


def test_a_python_block_named_by_its_first_line_is_written_as_that_file() -> None:
    markdown = "```python\n# team.py\norc = 1\n```\n```python\n# team.py, continued\nx = 2\n```\n"

    assert plan(read_blocks(markdown)) == [
        WriteFile("team.py", "# team.py\norc = 1\n", append=False, line=1),
        WriteFile("team.py", "# team.py, continued\nx = 2\n", append=True, line=5),
    ]


def test_a_file_marker_writes_a_block_whatever_its_language() -> None:
    markdown = "<!-- snippet: file prices.toml -->\n```toml\na = 1\n```\n"

    assert plan(read_blocks(markdown)) == [WriteFile("prices.toml", "a = 1\n", False, 2)]


# -- shell lines ---------------------------------------------------------------------------------


def test_shell_lines_are_commands_exports_and_long_running_processes() -> None:
    code = (
        "# a comment line\n"
        "\n"
        "export AGENTYARD_X=http://127.0.0.1:8765   # where\n"
        'export QUOTED="a b"\n'
        "agentyard stub-anthropic --port 8765 &   # a stub\n"
        "agentyard worker team:orc --all-agents\n"
        "agentyard flower team:orc --port 5555\n"
        "celery -A team worker -Q agent.researcher\n"
        "agentyard run team:orc research \\\n"
        '    "a topic"\n'
    )

    assert shell_steps(code, 10) == [
        Export("AGENTYARD_X", "http://127.0.0.1:8765", 13),
        Export("QUOTED", "a b", 14),
        Background("agentyard stub-anthropic --port 8765", "stub", None, 15),
        Background("agentyard worker team:orc --all-agents", "worker", "team", 16),
        Background("agentyard flower team:orc --port 5555", "flower", "team", 17),
        Background("celery -A team worker -Q agent.researcher", "worker", "team", 18),
        Command('agentyard run team:orc research      "a topic"', 19),
    ]


def test_a_line_that_starts_two_processes_is_refused() -> None:
    with pytest.raises(ReadmeError, match=r"line 2: .* starts more than one process"):
        shell_steps("agentyard worker t:o --all-agents & agentyard worker t:o --coordinator &\n", 1)


def test_a_command_sent_to_the_background_that_the_test_cannot_wait_for_is_refused() -> None:
    with pytest.raises(ReadmeError, match="does not know how to tell when it is ready"):
        shell_steps("python -m http.server &\n", 1)


def test_a_command_exits_0_unless_its_comment_says_another_code() -> None:
    code = "agentyard status nope   # exits 4: no such run\nagentyard migrate   # the schema\n"

    assert shell_steps(code, 1) == [
        Command("agentyard status nope   # exits 4: no such run", 2, exit_code=4),
        Command("agentyard migrate   # the schema", 3, exit_code=0),
    ]
