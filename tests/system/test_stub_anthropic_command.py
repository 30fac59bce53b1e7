"""`agentyard stub-anthropic` as a user starts it, driven by the real SDK."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from tests.support import free_port
from workers.providers.anthropic_provider import AnthropicProvider
from workers.providers.base import ChatMessage, ModelRequest


@pytest.mark.parametrize("server", [(), ("--asyncio",)], ids=["threads", "asyncio"])
def test_the_stub_command_serves_the_messages_api_to_the_real_sdk(server: tuple[str, ...]) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", "stub-anthropic", "--port", str(port), *server],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        provider = AnthropicProvider(api_key="any-key", base_url=f"http://127.0.0.1:{port}")
        response = provider.complete(
            ModelRequest(
                model="claude-haiku-4-5",
                system="You are terse.",
                messages=(ChatMessage("user", "hello"),),
                max_tokens=64,
                timeout_s=10,
            )
        )
        provider.close()
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)

    assert response.text
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert f"127.0.0.1:{port}" in stderr
