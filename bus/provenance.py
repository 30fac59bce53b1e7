"""Where a piece of text came from, how far it is trusted, and the signature that vouches for it.

Trusted: what the team wrote (system prompts, the workflow's definition). Untrusted: the
workflow's input, every agent output derived from untrusted text (in practice, all of them: an
agent's answer to an untrusted request is untrusted too), and tool results. Trust only ever
goes down on the way: text derived from several pieces is as trusted as the least trusted of
them.

A bus message carries the provenance of the text its payload holds, signed (HMAC-SHA256 with
``AGENTYARD_PROVENANCE_KEY``), so that a forged or edited message cannot raise its trust: a
claim whose signature does not check out is read as untrusted. Lowering trust never needs a
signature. The primitives live here, in the bus, because the bus may import only ``storage``;
``orchestration.guards.provenance`` re-exports them for the guards.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Trust = Literal["trusted", "untrusted"]
WORKFLOW_INPUT = "workflow input"


@dataclass(frozen=True, slots=True)
class Provenance:
    """One piece of text's origin (``workflow input``, ``step writer <id>``, ``tool <name>``)
    and trust. On the bus it travels as ``{"source": ..., "trust": ...}``."""

    source: str
    trust: Trust = "untrusted"

    @property
    def trusted(self) -> bool:
        return self.trust == "trusted"

    def to_json(self) -> dict[str, str]:
        return {"source": self.source, "trust": self.trust}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Provenance:
        trust: Trust = "trusted" if data.get("trust") == "trusted" else "untrusted"
        return cls(str(data["source"]), trust)

    def lowered(self) -> Provenance:
        """The same piece, untrusted."""
        return self if not self.trusted else Provenance(self.source, "untrusted")


def step_source(agent: str, step_id: str) -> str:
    return f"step {agent} {step_id}"


def tool_source(tool: str) -> str:
    """Where a tool's result came from: untrusted text, whatever the tool."""
    return f"tool {tool}"


def derived(pieces: Iterable[Provenance]) -> Trust:
    """The trust of text made from ``pieces``: the least of theirs (none: trusted)."""
    return "trusted" if all(piece.trusted for piece in pieces) else "untrusted"


def sign(provenance: Provenance, message_id: str, key: bytes) -> str:
    """The signature of ``provenance`` on the message ``message_id`` (hex)."""
    body = json.dumps([message_id, provenance.source, provenance.trust], separators=(",", ":"))
    return _mac(key, body)


def checked(
    provenance: Provenance, message_id: str, signature: str | None, key: bytes | None
) -> Provenance:
    """``provenance`` as far as its signature vouches for it: trusted only if it says so and the
    signature checks out with ``key``; otherwise untrusted (never more trusted than claimed)."""
    if not provenance.trusted:
        return provenance
    if key is None or signature is None:
        return provenance.lowered()
    if not _same(sign(provenance, message_id, key), signature):
        return provenance.lowered()
    return provenance


def sign_all(
    pieces: Sequence[Provenance], message_id: str, key: bytes, *, content: Any = None
) -> str:
    """One signature (hex) of all of ``pieces``, in order, on the message ``message_id`` and
    the JSON ``content`` they describe (a message's sender and payload): moved to another
    message or other content, with a piece added, dropped or changed, it no longer checks out
    (dropping an untrusted piece would raise the trust of what is derived from the rest)."""
    body = json.dumps(
        [message_id, _digest(content), [[p.source, p.trust] for p in pieces]],
        separators=(",", ":"),
    )
    return _mac(key, body)


def checked_all(
    pieces: Sequence[Provenance],
    message_id: str,
    signature: str | None,
    key: bytes | None,
    *,
    content: Any = None,
) -> tuple[Provenance, ...]:
    """``pieces`` as far as their signature vouches for them: as claimed if ``signature`` checks
    out with ``key`` (see ``sign_all``); otherwise every trusted piece read as untrusted.
    Untrusted pieces stay as they are either way."""
    claimed = tuple(pieces)
    if all(not piece.trusted for piece in claimed):
        return claimed
    if key is not None and signature is not None:
        expected = sign_all(claimed, message_id, key, content=content)
        if _same(expected, signature):
            return claimed
    return tuple(piece.lowered() for piece in claimed)


def _digest(content: Any) -> str:
    """SHA-256 of ``content`` as canonical JSON (keys sorted, no spaces)."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _mac(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def _same(expected: str, signature: str) -> bool:
    """In constant time; a signature of any characters (a forged one) is simply not the same."""
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "surrogatepass"))
