"""Injection attempts found in text that is about to enter a prompt: a scored rule set, and the
face any other classifier shows (``Classifier``), so that a model-based one can take its place
without a model downloaded at run time.

Each rule belongs to a family of known attacks (overriding instructions, role play, role and
delimiter spoofing, hidden Unicode, encoded payloads, exfiltration links, leaking the system
prompt, the same in other languages) and scores 0 to 1. Text is read as a model would: Unicode
normalized (NFKC), invisible characters dropped, and base64 or hex runs decoded and read too.
Text that discusses an attack (it quotes it, or speaks of injections, jailbreaks, examples)
scores lower: a security article is not an attack. A ``Finding`` per family that scored, with
the highest score of its rules; what is done about it (``action``) is the workflow's decision.
These rules lower the risk; they do not remove it (see bench/injection.py for how often they
miss, and how often they cry wolf).
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

Action = Literal["flag", "quarantine"]
THRESHOLD = 0.7  # a finding at least this sure is acted on (flagged, or quarantined)


@dataclass(frozen=True, slots=True)
class Finding:
    """A suspected injection: its family (``kind``), where the text came from (``source``),
    how sure the classifier is (0 to 1), and what was done (``flag`` or ``quarantine``)."""

    kind: str
    source: str
    score: float
    action: Action = "flag"
    evidence: str = ""  # the words that matched, cut short

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "source": self.source,
            "score": round(self.score, 3),
            "action": self.action,
            "evidence": self.evidence,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        action: Action = "quarantine" if data.get("action") == "quarantine" else "flag"
        return cls(
            str(data["kind"]),
            str(data["source"]),
            float(data["score"]),
            action,
            str(data.get("evidence", "")),
        )


class Classifier(Protocol):
    """What finds injection attempts: ``findings(text, source)`` returns those at least
    ``THRESHOLD`` sure, with ``action`` left at "flag" (the workflow decides)."""

    def findings(self, text: str, source: str) -> list[Finding]: ...


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    score: float


def _rule(kind: str, score: float, pattern: str) -> Rule:
    """A rule matched against lower-cased text: its pattern lower-cased (escapes kept), without
    IGNORECASE, which makes Python's engine a third slower."""
    return Rule(kind, re.compile(_lowered(pattern), re.UNICODE), score)


def _lowered(pattern: str) -> str:
    """``pattern`` with its letters lower-cased, but not those of escapes (``\\S`` stays)."""
    out, escaped = [], False
    for char in pattern:
        out.append(char if escaped else char.lower())
        escaped = char == "\\" and not escaped
    return "".join(out)


_VERB = r"(?:ignore|disregard|forget|override|bypass|skip|drop|abandon|neglect)"
_THING = (
    r"(?:instructions?|directions?|rules?|prompts?|guidelines|guidance|context|orders"
    r"|constraints|polic(?:y|ies))"
)
_WHOSE = r"(?:previous|prior|above|earlier|preceding|system|original|initial|your|these|those)"
_FREED = (
    r"(?:unrestricted|unfiltered|uncensored|without (?:any )?(?:rules|restrictions|limits"
    r"|filters)|no (?:rules|restrictions|limits))"
)
_SECRET = (
    r"(?:system prompt|initial prompt|hidden (?:prompt|instructions)|instructions above|secret"
    r"|api key|password|credentials)"
)
_SENSITIVE = (
    r"(?:conversation|chat|history|data|passwords?|keys?|secrets?|credentials|messages"
    r"|memory|contents|instructions|prompt|address|contract|files?|tokens?|emails?)"
)
_HOST = r"(?:https?://|www\.|\b[a-z0-9-]+\.(?:com|net|org|io|xyz|ru)\b)"
_PERSONA = (
    r"(?:mode|AI|model|assistant|bot|GPT|unrestricted|unfiltered|uncensored|free|evil"
    r"|jailbroken|administrator|admin|bound|restricted)"
)
RULES: tuple[Rule, ...] = (
    # overriding what the agent was told
    _rule("override", 0.9, rf"\b{_VERB}\b[^.\n]{{0,40}}\b{_WHOSE}\b[^.\n]{{0,30}}\b{_THING}\b"),
    _rule("override", 0.85, rf"\b{_VERB}\s+(?:all|any|every)\s+(?:of\s+)?(?:the\s+)?{_THING}\b"),
    _rule(
        "override",
        0.85,
        rf"\b{_VERB}\b[^.\n]{{0,20}}\b{_THING}\b[^.\n]{{0,20}}"
        r"\b(?:above|before|so far|previously|you (?:were|have been) given)\b",
    ),
    _rule("override", 0.8, rf"\bdo not (?:follow|obey|heed)\b[^.\n]{{0,30}}\b{_THING}\b"),
    _rule(
        "override", 0.75, r"\b(?:new|updated|revised|real|actual) (?:instructions?|orders|task)\s*:"
    ),
    _rule(
        "override", 0.7, r"\bfrom now on,?\s+(?:you|your|ignore|only|always|respond|answer|reply)\b"
    ),
    _rule(
        "override",
        0.7,
        r"\binstead,?\s+(?:you (?:must|should|will)|do|say|reply|respond|output|write)\b"
        r"[^.\n]{0,60}\b(?:only|exactly|verbatim)\b",
    ),
    _rule("override", 0.8, r"\b(?:system|admin|security|safety) override\b"),
    _rule(
        "override",
        0.8,
        r"\b(?:previous|prior|earlier|above|original) (?:context|instructions?|rules|prompt)"
        r" (?:is|are) (?:now )?(?:void|cancell?ed|invalid|obsolete|suspended|revoked)\b",
    ),
    # role play that sheds the agent's rules
    _rule(
        "role_play",
        0.8,
        rf"\byou are (?:now|no longer)\s+(?:an? |the |in |my )?(?:\w+ )?{_PERSONA}\b",
    ),
    _rule(
        "role_play",
        0.85,
        r"\b(?:DAN|do(?:es)? anything now|developer mode|jailbr(?:ea|o)k(?:en)?|god mode"
        r"|unfiltered mode|maintenance mode)\b",
    ),
    _rule(
        "role_play",
        0.7,
        rf"\b(?:pretend|imagine|act|behave|respond|simulate)\b[^.\n]{{0,25}}"
        rf"\b(?:as|to be|you are|a)\b[^.\n]{{0,40}}\b{_FREED}\b",
    ),
    _rule(
        "role_play",
        0.8,
        r"\b(?:role-?play|play the role of|simulate|become)\b[^.\n]{0,40}"
        r"\b(?:never refuses?|no rules|evil|does anything|without (?:any )?(?:limits|rules"
        r"|restrictions)|no restrictions)\b",
    ),
    _rule("role_play", 0.7, r"\b(?:who|that) never refuses?\b"),
    # spoofed roles, turns and delimiters
    _rule(
        "spoofing",
        0.8,
        r"<\|(?:im_start|im_end|system|endoftext|eot_id|start_header_id)\|>|\[/?INST\]|<</?SYS>>",
    ),
    _rule("spoofing", 0.75, r"</?\s*(?:system|instructions|admin|developer)\s*>"),
    _rule(
        "spoofing",
        0.7,
        r"(?m)^[ \t>#*_-]*(?:system|assistant|developer|admin(?:istrator)?)"
        r"\s*(?:\(.*?\))?\s*:\s*\S",
    ),
    _rule(
        "spoofing",
        0.7,
        r"(?:#{2,}|={3,}|-{3,})\s*(?:system|admin|developer)\s*"
        r"(?:message|prompt|override|instructions?)\b",
    ),
    _rule("spoofing", 0.75, r"(?:#{2,}|\*\*)\s*(?:system|admin|developer)\s*:"),
    _rule(
        "spoofing",
        0.75,
        r"\b(?:system|admin|administrator|developer)\s*:\s*[^.\n]{0,50}"
        r"\b(?:priority|urgent|overrides?|authori[sz]ed|grant|comply|disclose|must now)\b",
    ),
    _rule(
        "spoofing", 0.75, r"</?\s*(?:function_calls|invoke|tool_use|tool_call|function_results)\b"
    ),
    # asking for what the agent must keep to itself
    _rule(
        "leak",
        0.75,
        rf"\b(?:reveal|print|show|repeat|output|disclose|leak|dump|tell me)\b[^.\n]{{0,30}}"
        rf"\b(?:your|the)\b[^.\n]{{0,15}}\b{_SECRET}\b",
    ),
    _rule(
        "leak",
        0.75,
        r"\b(?:read|tell|give|show|send)\s+(?:me|us)\b[^.\n]{0,40}"
        r"\b(?:passwords?|api keys?|secrets?|credentials|pins?)\b",
    ),
    # carrying data out through a link or an image
    _rule("exfiltration", 0.8, r"!\[[^\]]*\]\(\s*https?://[^)\s]*\?[^)\s]*=[^)\s]*\)"),
    _rule(
        "exfiltration",
        0.75,
        rf"\b(?:send|post|upload|forward|transmit|exfiltrate|append|give)\b[^.\n]{{0,30}}"
        rf"\b{_SENSITIVE}\b[^.\n]{{0,30}}\b(?:to|into|at)\b[^.\n]{{0,20}}{_HOST}",
    ),
    _rule(
        "exfiltration",
        0.7,
        r"https?://[^\s)]*[?&][a-z_]*=\s*(?:\{|\[|<|%7B)[^\s)]*"
        r"(?:secret|key|data|conversation|prompt|history|password|token)",
    ),
    # a payload hidden in an encoding, with an order to decode it
    _rule(
        "encoded",
        0.7,
        r"\b(?:decode|base64|rot13|hex)\b[^.\n]{0,40}\b(?:then|and)\b[^.\n]{0,20}"
        r"\b(?:follow|execute|obey|do|run|perform)\b",
    ),
    # the same, in other languages
    _rule(
        "multilingual",
        0.85,
        r"\bignor(?:ez|e|er)\b[^.\n]{0,20}\b(?:toutes? )?les (?:instructions|consignes|règles)\b",
    ),
    _rule(
        "multilingual",
        0.85,
        r"\b(?:ignora|olvida)\b[^.\n]{0,20}\b(?:todas )?las "
        r"(?:instrucciones|reglas|indicaciones)\b",
    ),
    _rule(
        "multilingual",
        0.85,
        r"\b(?:ignoriere|vergiss)\b[^.\n]{0,30}\b(?:anweisungen|regeln|vorgaben)\b",
    ),
    _rule(
        "multilingual",
        0.85,
        r"\b(?:ignora|dimentica)\b[^.\n]{0,20}\b(?:tutte )?le (?:istruzioni|regole)\b",
    ),
    _rule(
        "multilingual",
        0.85,
        r"\b(?:ignore|esqueça|ignora)\b[^.\n]{0,20}\b(?:todas )?as (?:instruções|regras)\b",
    ),
    _rule(
        "multilingual",
        0.85,
        r"(?:игнорируй|забудь|проигнорируй)[^.\n]{0,30}(?:инструкции|указания|правила)",
    ),
    _rule(
        "multilingual",
        0.85,
        r"(?:忽略|无视|忘记|忽視|無視)[^。\n]{0,10}(?:指令|指示|说明|規則|规则|提示)",
    ),
    _rule(
        "multilingual", 0.85, r"(?:以前の|これまでの|上記の)?(?:指示|命令|ルール)を(?:無視|忘れ)"
    ),
    _rule("multilingual", 0.85, r"(?:이전|위의|모든)\s*(?:지시|명령|지침)\S*\s*(?:무시|잊어)"),
    _rule("multilingual", 0.85, r"(?:تجاهل|انسَ|انس)[^.\n]{0,20}(?:التعليمات|الأوامر)"),
)

# Words of a text that discusses attacks rather than makes one.
_DISCUSSION = re.compile(
    r"\b(?:prompt injection|injection attacks?|jailbreak(?:s|ing)? attempts?|attackers?|"
    r"adversar(?:y|ial)|red[- ]team(?:ing|ers)?|researchers?|for example|e\.g\.|such as|"
    r"a common (?:trick|attack|pattern)|phrases? like|strings? like|classifier|detector|"
    r"mitigat(?:e|ion)|defen[cs]es?|malicious)\b",
    re.IGNORECASE,
)
_URL = re.compile(r"https?://\S+|www\.\S+")
_QUOTED = re.compile(r"[\"“”'‘’`]")
# Zero-width joiners (U+200C, U+200D) are left out: emoji sequences and several scripts need them.
_INVISIBLE = re.compile("[\u00ad\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")
_JOINERS = re.compile("[\u200c\u200d]")  # not counted, but read past: "ig\u200dnore"
_OVERRIDDEN = re.compile("\u202e([^\u202c\n]*)")  # text a right-to-left override reverses
_TAG_CHARS = re.compile("[\U000e0000-\U000e007f]")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{24,}={0,2}(?![A-Za-z0-9+/=])")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}[\s:]?){20,}\b")


class RuleClassifier:
    """The built-in classifier: ``RULES``, scored, dampened for text that discusses attacks."""

    def __init__(self, rules: Sequence[Rule] = RULES, threshold: float = THRESHOLD) -> None:
        self._rules = tuple(rules)
        self._threshold = threshold

    def findings(self, text: str, source: str) -> list[Finding]:
        found: dict[str, Finding] = {}
        for finding in self._scored(text, source):
            kept = found.get(finding.kind)
            if kept is None or finding.score > kept.score:
                found[finding.kind] = finding
        return [f for f in found.values() if f.score >= self._threshold]

    def _scored(self, text: str, source: str) -> Iterable[Finding]:
        tags = _TAG_CHARS.findall(text)
        if tags:
            hidden = "".join(chr(ord(c) - 0xE0000) for c in tags if 0x20 <= ord(c) - 0xE0000 < 0x7F)
            yield Finding("hidden_unicode", source, 0.95, evidence=_short(hidden))
            text = f"{text}\n{hidden}"
        invisible = len(_INVISIBLE.findall(text))
        if invisible >= 3:
            yield Finding("hidden_unicode", source, min(0.9, 0.5 + 0.1 * invisible))
        reversed_runs = _OVERRIDDEN.findall(text)
        if reversed_runs:
            yield Finding("hidden_unicode", source, 0.75, evidence="right-to-left override")
            text = "\n".join([text, *(run[::-1] for run in reversed_runs)])
        readable = unicodedata.normalize("NFKC", _JOINERS.sub("", _INVISIBLE.sub("", text)))
        discussed = _DISCUSSION.search(_URL.sub(" ", readable)) is not None
        for decoded in _decoded(readable):
            for finding in self._matches(decoded, source, discussed=False):
                yield replace(finding, kind="encoded", score=max(finding.score, 0.8))
        yield from self._matches(readable, source, discussed)

    def _matches(self, text: str, source: str, discussed: bool) -> Iterable[Finding]:
        lowered = text.lower()
        same_length = len(lowered) == len(text)  # then a match's place is the same in both
        for rule in self._rules:
            match = rule.pattern.search(lowered)
            if match is None:
                continue
            score = rule.score
            if discussed or _in_quotes(lowered, match.start(), match.end()):
                score *= 0.6  # talk about an attack, or an attack quoted, is not one
            words = text[match.start() : match.end()] if same_length else match.group(0)
            yield Finding(rule.kind, source, score, evidence=_short(words))


def _decoded(text: str) -> Iterable[str]:
    """What base64 and hex runs in ``text`` say, when they say text."""
    for run in _BASE64.findall(text):
        try:
            raw = base64.b64decode(run + "=" * (-len(run) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        decoded = _printable(raw)
        if decoded:
            yield decoded
    for run in _HEX.findall(text):
        try:
            decoded = _printable(bytes.fromhex(re.sub(r"[\s:]", "", run)))
        except ValueError:
            continue
        if decoded:
            yield decoded


def _printable(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    letters = sum(c.isprintable() or c.isspace() for c in text)
    return text if text and letters / len(text) > 0.9 and " " in text else None


def _in_quotes(text: str, start: int, end: int) -> bool:
    """Whether the match sits between quotation marks on its line."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    before = _QUOTED.findall(text[line_start:start])
    after = _QUOTED.findall(text[end:line_end])
    return len(before) % 2 == 1 and len(after) >= 1


def _short(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
