"""What a workflow's input must be before anything is written: text that every store can hold.

The input goes into PostgreSQL rows, JSON messages and model prompts. Each of those refuses
something Python's ``str`` allows (NUL, lone surrogates), and would refuse it halfway through a
run; here it is refused at submit, with where the bad character is and what to do.
"""

from __future__ import annotations

from storage.errors import InvalidRequest


def check_input(workflow: str, given: object, max_chars: int) -> str:
    """``given`` if it is a workflow input that can run, else ``InvalidRequest``."""
    if not isinstance(given, str):
        kind = "nothing (None)" if given is None else f"a {type(given).__name__}"
        advice = (
            "; decode it first, e.g. data.decode('utf-8')"
            if isinstance(given, bytes | bytearray)
            else ""
        )
        raise InvalidRequest(
            f"the input of workflow {workflow!r} must be text (a str), got {kind}{advice}"
        )
    if not given.strip():
        raise InvalidRequest(f"the input of workflow {workflow!r} is empty; give it some text")
    if len(given) > max_chars:
        raise InvalidRequest(
            f"the input of workflow {workflow!r} has {len(given)} characters, over the limit "
            f"of {max_chars} (AGENTYARD_MAX_INPUT_CHARS); store large documents elsewhere and "
            "pass a reference"
        )
    nul = given.find("\x00")
    if nul >= 0:
        raise InvalidRequest(
            f"the input of workflow {workflow!r} has a NUL character at position {nul}, which "
            "the database cannot store; remove it (binary data belongs elsewhere, passed by "
            "reference)"
        )
    try:
        given.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(
            f"the input of workflow {workflow!r} is not valid text at position {exc.start}: "
            f"{given[exc.start]!r} is half of a character (a lone surrogate, as bytes that are "
            "not UTF-8 become when decoded with errors='surrogateescape', e.g. on a command "
            "line); pass UTF-8 text"
        ) from None
    return given


MAX_FACTS = 1000


def check_facts(workflow: str, given: object, max_chars: int) -> list[str]:
    """``given`` as the list of facts a run's checks may read, else ``InvalidRequest``: a list
    of texts, each as a workflow input must be (``check_input``), at most ``MAX_FACTS``."""
    if isinstance(given, str | bytes) or not isinstance(given, list | tuple):
        raise InvalidRequest(
            f"the facts of a run of workflow {workflow!r} must be a list of texts, got "
            f"{type(given).__name__}"
        )
    if len(given) > MAX_FACTS:
        raise InvalidRequest(
            f"a run of workflow {workflow!r} takes at most {MAX_FACTS} facts, got {len(given)}"
        )
    for index, fact in enumerate(given):
        try:
            check_input(workflow, fact, max_chars)
        except InvalidRequest as refused:
            raise InvalidRequest(f"fact {index}: {refused}".replace("the input of ", "")) from None
    return list(given)
