"""Keeping secrets out of log lines: API keys, passwords in URLs, tokens, private keys.

``Redactor`` cleans any value a log line carries: a field whose name says it holds a secret
(``api_key``, ``password``, ``authorization``...) loses its value whatever it is, and every
string is searched for what secrets look like (provider keys, ``user:password@`` in URLs, bearer
tokens, ``password=...`` pairs, private key blocks, well-known token formats) and for the exact
secrets this process was configured with. It is a structlog processor, and a ``logging.Filter``
for the log lines of Celery and other libraries.

It errs on the side of hiding: a log line may lose a harmless value; it must never carry a key.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

REDACTED = "[REDACTED]"

# Field names whose values are secrets, after lower-casing and turning '-' into '_'. Whole words
# only: `input_tokens` and `max_tokens` are counts, not tokens.
_SECRET_FIELD = re.compile(
    r"(?:^|_)(?:api_?key|apikey|secret|client_secret|password|passwd|pwd|passphrase|token"
    r"|access_token|refresh_token|id_token|auth|authorization|cookie|set_cookie|credentials?"
    r"|private_key|basic_auth|session_key|signature)$"
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # user:password@ in any URL (redis://:pw@host, postgresql://u:pw@host, https://u:pw@host)
    (re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*://[^:/@\s]*:)[^@/\s]+@"), rf"\g<head>{REDACTED}@"),
    # Anthropic and other `sk-` style keys
    (re.compile(r"\bsk-(?:ant-)?[A-Za-z0-9_\-]{8,}"), REDACTED),
    # Authorization: Bearer / Basic credentials
    (
        re.compile(r"(?i)\b(?P<scheme>bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}"),
        rf"\g<scheme> {REDACTED}",
    ),
    # key=value, key: value, "key": "value" for keys that name a secret
    (
        re.compile(
            r"(?i)(?P<key>\b(?:x-)?(?:api[_-]?key|password|passwd|pwd|secret|client_secret|token"
            r"|access_token|refresh_token|authorization|auth)\b[\"']?\s*[:=]\s*[\"']?)"
            r"(?!\[REDACTED\])[^\s\"'&,;}\]]+"
        ),
        rf"\g<key>{REDACTED}",
    ),
    # PEM private keys
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
        REDACTED,
    ),
    # AWS access key ids, GitHub and Slack tokens, JSON web tokens
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b"), REDACTED),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"), REDACTED),
)

# Every pattern above needs one of these in the text: a string without any of them (most log
# values: ids, names, numbers) is clean, and costs one search instead of all of them.
# (Searched in the lower-cased text: a case-blind search is several times slower.)
_MAYBE_SECRET = re.compile(
    r"://|sk-|bearer|basic|key|passw|pwd|secret|token|auth|akia|asia|gh[pousr]_|xox|eyj"
)

_PLAIN = frozenset({int, float, bool, type(None)})  # values that cannot hold a secret

_MIN_KNOWN_SECRET = 6  # shorter configured values would blank out ordinary words


@functools.lru_cache(maxsize=4096)
def is_secret_field(name: str) -> bool:
    return bool(_SECRET_FIELD.search(name.lower().replace("-", "_")))


class Redactor:
    """Removes secrets from log values; ``known`` are this process's own secrets (its API key,
    the Flower password...), removed wherever they appear."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        self._known = sorted(
            {value for value in known if value and len(value) >= _MIN_KNOWN_SECRET},
            key=len,
            reverse=True,
        )

    def text(self, value: str) -> str:
        for secret in self._known:
            if secret in value:
                value = value.replace(secret, REDACTED)
        if _MAYBE_SECRET.search(value.lower()) is None:
            return value
        for pattern, replacement in _PATTERNS:
            value = pattern.sub(replacement, value)
        return value

    def value(self, value: Any, depth: int = 0) -> Any:
        kind = type(value)
        if kind is str:
            return self.text(value)
        if kind in _PLAIN:
            return value
        if depth > 8:  # deeper than any log line should be: keep it out rather than walk it
            return REDACTED
        if isinstance(value, Mapping):
            return {
                key: REDACTED
                if isinstance(key, str) and is_secret_field(key) and item is not None
                else self.value(item, depth + 1)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(item, depth + 1) for item in value]
        if isinstance(value, bool | int | float) or value is None:
            return value
        return self.text(str(value))  # exceptions, paths, URLs objects: as the renderer would

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> Mapping[str, Any]:
        """The structlog processor."""
        cleaned: Mapping[str, Any] = self.value(event_dict)
        return cleaned


class RedactingFilter(logging.Filter):
    """The same cleaning for the standard library's log records (Celery's, kombu's...)."""

    def __init__(self, redactor: Callable[[], Redactor]) -> None:
        """``redactor`` gives the redactor of the moment (logging may be set up again)."""
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: leave it be
            return True
        redactor = self._redactor()
        record.msg = redactor.text(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            trace_text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redactor.text(trace_text)
            record.exc_info = None
        return True
