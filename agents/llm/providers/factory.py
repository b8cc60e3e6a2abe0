"""Build providers from the config: a provider without a key is left out."""

import logging
from collections.abc import Mapping

from natsfleet.agents.llm.config import LLMConfig, ModelConfig, ProviderKind
from natsfleet.agents.llm.providers.base import Provider
from natsfleet.agents.llm.providers.offline import (
    OFFLINE_DEPLOYMENT,
    OFFLINE_PROVIDER,
    OfflineProvider,
)

log = logging.getLogger(__name__)


def build_providers(
    config: LLMConfig, env: Mapping[str, str] | None = None
) -> tuple[dict[str, Provider], tuple[ModelConfig, ...]]:
    """Providers by name and the models they can serve.

    With no usable model at all, the result is the offline provider and its
    one deployment, so a fleet without keys still runs (labelled offline).
    """
    providers: dict[str, Provider] = {}
    for name, cfg in config.providers.items():
        if cfg.kind is ProviderKind.OFFLINE:
            providers[name] = OfflineProvider(name)
            continue
        key = cfg.api_key(env)
        if key is None and cfg.require_key:
            log.info("llm provider %s has no API key configured; skipping it", name)
            continue
        if cfg.kind is ProviderKind.ANTHROPIC:
            from natsfleet.agents.llm.providers.anthropic import AnthropicProvider

            providers[name] = AnthropicProvider(
                name, api_key=key, base_url=cfg.base_url, timeout_s=cfg.timeout_s
            )
        else:
            from natsfleet.agents.llm.providers.openai import OpenAIProvider

            providers[name] = OpenAIProvider(
                name, api_key=key, base_url=cfg.base_url, timeout_s=cfg.timeout_s
            )
    models = tuple(m for m in config.models if m.provider in providers)
    if not models or config.routing.offline_fallback:
        providers.setdefault(OFFLINE_PROVIDER, OfflineProvider())
        models += (OFFLINE_DEPLOYMENT,)
        if len(models) == 1:
            log.warning("no LLM API key configured: answers come from the offline provider")
    return providers, models
