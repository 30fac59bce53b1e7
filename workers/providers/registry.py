"""Picks the provider for a model name: ``offline:*`` runs locally, anything else is Anthropic."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from storage.settings import Settings
from workers.providers.base import ModelProvider, lacks_anthropic_credentials
from workers.providers.offline import PREFIX as OFFLINE_PREFIX
from workers.providers.offline import OfflineModel, OfflineProvider

if TYPE_CHECKING:
    from orchestration.definitions import Agent


class Providers:
    """The providers of one process, made on first use and shared by its threads."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._offline = OfflineProvider()
        self._anthropic: ModelProvider | None = None

    def for_model(self, model: str) -> ModelProvider:
        if is_offline(model):
            return self._offline
        with self._lock:
            if self._anthropic is None:
                from workers.providers.anthropic_provider import AnthropicProvider

                key = self._settings.anthropic_api_key
                self._anthropic = AnthropicProvider(
                    api_key=key.get_secret_value() if key else None,
                    base_url=self._settings.anthropic_base_url,
                )
            return self._anthropic

    def warm(self, agents: Iterable[Agent]) -> None:
        """Build now what the first calls of ``agents`` would build (their providers' clients
        for each timeout they use, the SDK's models): see ``AnthropicProvider.warm``."""
        timeouts: dict[str, set[float]] = {}
        for agent in agents:
            if not is_offline(agent.model):
                timeouts.setdefault(agent.model, set()).add(agent.timeout_s)
        for model, seen in timeouts.items():
            warm = getattr(self.for_model(model), "warm", None)
            if warm is not None:
                warm(seen)

    def close(self) -> None:
        """Release the HTTP connections of the providers made so far."""
        with self._lock:
            close = getattr(self._anthropic, "close", None)
            if close is not None:
                close()
            self._anthropic = None


def without_credentials(settings: Settings, agents: Iterable[Agent]) -> list[str]:
    """The ids of ``agents`` whose Claude model cannot be called with ``settings``: no API key,
    and no base URL other than the real API's (agentyard's stub server needs no key)."""
    key = settings.anthropic_api_key
    if not lacks_anthropic_credentials(
        key.get_secret_value() if key else None, settings.anthropic_base_url
    ):
        return []
    return sorted(agent.id for agent in agents if not is_offline(agent.model))


def provider_name(model: str) -> str:
    """Who serves ``model``, as the GenAI semantic conventions name a provider."""
    return "agentyard.offline" if is_offline(model) else "anthropic"


def is_offline(model: str) -> bool:
    return model.startswith(OFFLINE_PREFIX)


def check_model_name(model: str) -> None:
    """Raise ``ConfigurationError`` now for an offline model name that could never run."""
    if is_offline(model):
        OfflineModel.parse(model)
