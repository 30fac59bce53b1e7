"""Webhooks: a JSON POST to a URL the settings name, best effort.

What a webhook tells is on record before it is sent (a cost alert's row, an approval's), so a
webhook that fails or is slow loses nothing: it is a courtesy. ``post`` waits at most
``TIMEOUT_S`` and logs a failure; ``post_later`` does it on a thread of its own, so that
whoever sends it never waits for it.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

import structlog

log = structlog.get_logger(__name__)

TIMEOUT_S = 2.0


def post(url: str, body: dict[str, Any], failed_event: str) -> bool:
    """POST ``body`` as JSON to ``url``; False (and a ``failed_event`` warning in the log) if it
    could not be delivered."""
    if not url.startswith(("http://", "https://")):
        log.warning(failed_event, url=url, error="not an http(s) URL")
        return False
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S):
            return True
    except OSError as exc:
        log.warning(failed_event, url=url, error=str(exc))
        return False


def post_later(url: str, body: dict[str, Any], failed_event: str) -> threading.Thread:
    """``post`` on a daemon thread of its own, started; returned for a caller that waits."""
    thread = threading.Thread(
        target=post, args=(url, body, failed_event), name="agentyard-webhook", daemon=True
    )
    thread.start()
    return thread
