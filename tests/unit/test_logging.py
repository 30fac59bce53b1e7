"""Log lines go to the standard error of the moment they are written."""

from __future__ import annotations

import io
import sys

import pytest
import structlog

from storage.settings import Settings
from workers.logging import configure_logging


def test_a_line_logged_after_stderr_was_replaced_goes_to_the_new_stderr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(log_level="INFO", log_format="json", _env_file=None)  # type: ignore[call-arg]
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging(settings, force=True)
    first.close()  # what a test harness does to the stream it captured
    later = io.StringIO()
    monkeypatch.setattr(sys, "stderr", later)

    structlog.get_logger("t").info("bus.delivered", message_id="m1")

    assert '"event": "bus.delivered"' in later.getvalue()
