"""Untrusted text made inert before it enters a prompt, its meaning kept.

What goes: characters a reader cannot see (zero-width ones, bidirectional controls, Unicode tag
characters, which can smuggle a whole hidden instruction). What is made inert: markers a model
reads as the start of another turn or role (``Human:``, ``Assistant:``, ``<|im_start|>``,
``</system>``, ``[INST]``...), blocks dressed as tool calls (``<function_calls>``, ``<invoke>``,
``<tool_use>``), and markdown images and links to hosts not on the allow-list (an image fetched
by a renderer can carry data out in its URL). A marker keeps its words and loses its shape (its
brackets become look-alikes, a trailing colon a ``(quoted)`` note); an image or link keeps its
text and names its host. Each change is counted, so that a step can say what was done.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# Zero-width and invisible formatting characters, bidirectional controls, and the tag block.
# The zero-width joiners (U+200C, U+200D) stay: emoji sequences and several scripts need them.
_INVISIBLE = re.compile(
    "["
    "\u00ad\u180e\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\ufeff\U000e0000-\U000e007f"
    "]"
)
# A turn or role marker at the start of a line: "Human:", "### System:", "<|im_start|>user".
_ROLE_LINE = re.compile(
    r"(?im)^(?P<lead>[ \t>#*_-]*)(?P<role>human|assistant|system|user|developer|tool)"
    r"(?P<tail>\s*(?:\(.*?\))?\s*):(?=\s|$)"
)
_CHAT_TOKENS = re.compile(
    r"<\|(?:im_start|im_end|im_sep|endoftext|system|user|assistant|eot_id|start_header_id"
    r"|end_header_id|begin_of_text)\|>|\[/?INST\]|<</?SYS>>",
    re.IGNORECASE,
)
_TAGS = re.compile(
    r"</?\s*(?:system|instructions?|prompt|function_calls|function_results|invoke|parameter"
    r"|tool_use|tool_result|tool_call|antml:[a-z_]+)\b[^<>]*>",
    re.IGNORECASE,
)
_MARKDOWN_LINK = re.compile(
    r"(?P<bang>!?)\[(?P<text>[^\]\n]{0,300})\]\((?P<url>[^)\s]{1,2000})[^)]*\)"
)

_LOOK_ALIKE = str.maketrans({"<": "‹", ">": "›", "[": "⁅", "]": "⁆", "|": "¦"})


@dataclass(frozen=True, slots=True)
class Neutralized:
    """The text made inert, and what was changed, by kind (``invisible``, ``role_marker``,
    ``chat_token``, ``tag``, ``image``, ``link``): how many of each."""

    text: str
    changes: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def neutralize(text: str, allowed_hosts: Iterable[str] = ()) -> Neutralized:
    """``text`` with its invisible characters removed and its markers, tool-call blocks and
    off-list images and links made inert; ``allowed_hosts`` (e.g. ``docs.python.org``) keep
    their links and images as they are (their subdomains too)."""
    changes: Counter[str] = Counter()
    allowed = tuple(host.lower().lstrip(".") for host in allowed_hosts)

    def count(kind: str, replacement: str | None = None) -> Callable[[re.Match[str]], str]:
        def replace(match: re.Match[str]) -> str:
            changes[kind] += 1
            return replacement if replacement is not None else match.group(0).translate(_LOOK_ALIKE)

        return replace

    out = _INVISIBLE.sub(count("invisible", ""), text)
    out = _CHAT_TOKENS.sub(count("chat_token"), out)
    out = _TAGS.sub(count("tag"), out)

    def role(match: re.Match[str]) -> str:
        changes["role_marker"] += 1
        return f"{match['lead']}{match['role']}{match['tail']} (quoted):"

    out = _ROLE_LINE.sub(role, out)

    def link(match: re.Match[str]) -> str:
        url = match["url"]
        host = (urlsplit(url).hostname or "").lower()
        if not host or _allowed(host, allowed):
            return match.group(0)
        image = bool(match["bang"])
        changes["image" if image else "link"] += 1
        label = match["text"].strip() or ("an image" if image else "a link")
        return f"[{'image' if image else 'link'} to {host} removed: {label}]"

    out = _MARKDOWN_LINK.sub(link, out)
    return Neutralized(out, dict(changes))


def _allowed(host: str, allowed: tuple[str, ...]) -> bool:
    return any(host == a or host.endswith("." + a) for a in allowed)
