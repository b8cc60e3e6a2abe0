"""Build providers from the config: a provider without a key is left out.

`PROVIDERS` maps each `ProviderKind` to its constructor. Adding a provider is
a new kind in `config.py`, a module here, and one entry below
(docs/architecture.md, "Adding an LLM provider"). Constructors import their
SDK inside, so a process never imports an SDK for a provider it does not build.
"""

import logging
from collections.abc import Callable, Mapping

from natsfleet.agents.llm.config import (
    LLMConfig,
    ModelConfig,
    ProviderConfig,
    ProviderKind,
    UnknownProviderKindError,
)
from natsfleet.agents.llm.providers.base import Provider
from natsfleet.agents.llm.providers.offline import (
    OFFLINE_DEPLOYMENT,
    OFFLINE_PROVIDER,
    OfflineProvider,
)

log = logging.getLogger(__name__)

#: (provider name, its config, its API key or None) -> the provider.
ProviderConstructor = Callable[[str, ProviderConfig, str | None], Provider]


def _anthropic(name: str, cfg: ProviderConfig, key: str | None) -> Provider:
    from natsfleet.agents.llm.providers.anthropic import AnthropicProvider

    return AnthropicProvider(name, api_key=key, base_url=cfg.base_url, timeout_s=cfg.timeout_s)


def _openai(name: str, cfg: ProviderConfig, key: str | None) -> Provider:
    from natsfleet.agents.llm.providers.openai import OpenAIProvider

    return OpenAIProvider(name, api_key=key, base_url=cfg.base_url, timeout_s=cfg.timeout_s)


def _offline(name: str, cfg: ProviderConfig, key: str | None) -> Provider:
    return OfflineProvider(name)


PROVIDERS: Mapping[ProviderKind, ProviderConstructor] = {
    ProviderKind.ANTHROPIC: _anthropic,
    ProviderKind.OPENAI: _openai,
    ProviderKind.OFFLINE: _offline,
}


def build_providers(
    config: LLMConfig, env: Mapping[str, str] | None = None
) -> tuple[dict[str, Provider], tuple[ModelConfig, ...]]:
    """Providers by name and the models they can serve.

    With no usable model at all, the result is the offline provider and its
    one deployment, so a fleet without keys still runs (labelled offline).

    Raises:
        UnknownProviderKindError: a kind without a constructor (config
            validation refuses unknown kinds first; this guards a kind added
            to `ProviderKind` but not to `PROVIDERS`).
    """
    providers: dict[str, Provider] = {}
    for name, cfg in config.providers.items():
        construct = PROVIDERS.get(cfg.kind)
        if construct is None:
            raise UnknownProviderKindError(name, cfg.kind)
        key = cfg.api_key(env)
        if key is None and cfg.require_key and cfg.kind is not ProviderKind.OFFLINE:
            log.info("llm provider %s has no API key configured; skipping it", name)
            continue
        providers[name] = construct(name, cfg, key)
    models = tuple(m for m in config.models if m.provider in providers)
    if not models or config.routing.offline_fallback:
        providers.setdefault(OFFLINE_PROVIDER, OfflineProvider())
        models += (OFFLINE_DEPLOYMENT,)
        if len(models) == 1:
            log.warning("no LLM API key configured: answers come from the offline provider")
    return providers, models
