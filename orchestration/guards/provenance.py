"""Where a piece of text came from, and how far it is trusted.

Trusted: what the team wrote (system prompts, the workflow's definition). Untrusted: the
workflow's input, every agent output derived from untrusted text (in practice, all of them: an
agent's answer to an untrusted request is untrusted too), and tool results. Trust only ever
goes down on the way: text derived from several pieces is as trusted as the least trusted of
them. A bus message carries its provenance signed (HMAC-SHA256 with a key from the settings),
so that a forged or edited message cannot raise its trust: one whose signature does not check
out is read as untrusted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Trust = Literal["trusted", "untrusted"]
WORKFLOW_INPUT = "workflow input"


@dataclass(frozen=True, slots=True)
class Provenance:
    """One piece of text's origin (``workflow input``, ``step writer <id>``, ``tool <name>``)
    and trust."""

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


def step_source(agent: str, step_id: str) -> str:
    return f"step {agent} {step_id}"


def derived(pieces: Iterable[Provenance]) -> Trust:
    """The trust of text made from ``pieces``: the least of theirs (none: trusted)."""
    return "trusted" if all(piece.trusted for piece in pieces) else "untrusted"


def sign(provenance: Provenance, message_id: str, key: bytes) -> str:
    """The signature of ``provenance`` on the message ``message_id`` (hex)."""
    body = json.dumps([message_id, provenance.source, provenance.trust], separators=(",", ":"))
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def checked(
    provenance: Provenance, message_id: str, signature: str | None, key: bytes | None
) -> Provenance:
    """``provenance`` as far as its signature vouches for it: trusted only if it says so and the
    signature checks out with ``key``; otherwise untrusted (never more trusted than claimed)."""
    if not provenance.trusted:
        return provenance
    if key is None or signature is None:
        return Provenance(provenance.source, "untrusted")
    expected = sign(provenance, message_id, key)
    if not hmac.compare_digest(expected, signature):
        return Provenance(provenance.source, "untrusted")
    return provenance
