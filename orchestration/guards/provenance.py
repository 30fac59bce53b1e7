"""Where a piece of text came from, and how far it is trusted: the guards' name for what
``bus.provenance`` defines.

Trusted: what the team wrote (system prompts, the workflow's definition). Untrusted: the
workflow's input, every agent output derived from untrusted text (in practice, all of them: an
agent's answer to an untrusted request is untrusted too), and tool results. Trust only ever
goes down on the way: text derived from several pieces is as trusted as the least trusted of
them. A bus message carries its provenance signed (HMAC-SHA256 with
``AGENTYARD_PROVENANCE_KEY``), so that a forged or edited message cannot raise its trust: one
whose signature does not check out is read as untrusted.

The definitions live in ``bus.provenance`` because the bus signs and checks them and may import
only ``storage``; they are re-exported here so the guards keep one place for all they use.
"""

from __future__ import annotations

from bus.provenance import (
    WORKFLOW_INPUT,
    Provenance,
    Trust,
    checked,
    checked_all,
    derived,
    sign,
    sign_all,
    step_source,
    tool_source,
)

__all__ = [
    "WORKFLOW_INPUT",
    "Provenance",
    "Trust",
    "checked",
    "checked_all",
    "derived",
    "sign",
    "sign_all",
    "step_source",
    "tool_source",
]
