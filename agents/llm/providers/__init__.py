"""Providers: Anthropic, OpenAI (any compatible base_url) and the offline one.

The SDK-backed providers import their SDK only when constructed.
"""

from natsfleet.agents.llm.providers.base import Provider
from natsfleet.agents.llm.providers.factory import PROVIDERS, ProviderConstructor, build_providers
from natsfleet.agents.llm.providers.offline import (
    OFFLINE_DEPLOYMENT,
    OFFLINE_MARK,
    OFFLINE_MODEL,
    OFFLINE_PROVIDER,
    OfflineProvider,
)

__all__ = [
    "OFFLINE_DEPLOYMENT",
    "OFFLINE_MARK",
    "OFFLINE_MODEL",
    "OFFLINE_PROVIDER",
    "PROVIDERS",
    "OfflineProvider",
    "Provider",
    "ProviderConstructor",
    "build_providers",
]
