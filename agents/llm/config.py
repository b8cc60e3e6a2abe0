"""The model config: providers, models with prices, routing weights, cooldown and cache.

Loaded from TOML (the fleet file embeds it under `[llm]`). API keys never live
here: a provider names the environment variable or file that holds its key.
"""

import os
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import msgspec

from natsfleet.agents.llm.governor_config import GovernorConfig, check_governor
from natsfleet.agents.llm.types import Tier, TokenUsage
from natsfleet.protocols import NatsFleetError
from natsfleet.telemetry.redact import register

_PER_MTOK = 1_000_000.0


class ConfigError(NatsFleetError):
    """The LLM config is malformed or inconsistent."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class ProviderKind(StrEnum):
    """The provider kinds a config may name; `providers/factory.py` maps each to
    its constructor (a test checks that every kind has one)."""

    ANTHROPIC = "anthropic"
    OPENAI = "openai"
    OFFLINE = "offline"


class UnknownProviderKindError(ConfigError):
    """A provider's `kind` is not one natsfleet knows; the message names the known kinds."""

    def __init__(self, provider: str, kind: object) -> None:
        self.provider = provider
        self.kind = kind
        self.known = tuple(sorted(k.value for k in ProviderKind))
        super().__init__(
            f"provider {provider!r} has unknown kind {kind!r} "
            f"(known kinds: {', '.join(self.known)})"
        )


_DEFAULT_KEY_ENV = {
    ProviderKind.ANTHROPIC: "ANTHROPIC_API_KEY",
    ProviderKind.OPENAI: "OPENAI_API_KEY",
}


class ProviderConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One API endpoint. `base_url` points the OpenAI provider at any compatible server.

    `api_key_env` defaults to ANTHROPIC_API_KEY / OPENAI_API_KEY. A provider
    without a key is skipped, unless `require_key = false` (local servers).
    """

    kind: ProviderKind
    base_url: str | None = None
    api_key_env: str | None = None
    api_key_file: str | None = None
    require_key: bool = True
    timeout_s: float = 120.0

    def api_key(self, env: Mapping[str, str] | None = None) -> str | None:
        """The key from the file or environment, or None. Never log the result."""
        if self.kind is ProviderKind.OFFLINE:
            return None
        if self.api_key_file:
            try:
                text = Path(self.api_key_file).expanduser().read_text().strip()
            except OSError as exc:
                # The path may be logged; the content never is.
                raise ConfigError(
                    f"cannot read api_key_file {self.api_key_file!r}: {exc.strerror}"
                ) from None
            register(text)  # redacted from everything this process emits
            return text or None
        name = self.api_key_env or _DEFAULT_KEY_ENV[self.kind]
        key = (env if env is not None else os.environ).get(name) or None
        register(key)
        return key


class ModelConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A deployment: one model on one provider, with its prices and traits.

    `quality` (0..1) and `latency_ms` feed the routing objective; the router
    refines `latency_ms` from observed calls.
    """

    name: str
    provider: str
    model: str
    tier: Tier
    input_usd_per_mtok: float = 0.0
    output_usd_per_mtok: float = 0.0
    cache_read_usd_per_mtok: float | None = None
    cache_write_usd_per_mtok: float | None = None
    context_window_tokens: int = 128_000
    max_output_tokens: int = 8192
    quality: float = 0.5
    latency_ms: float = 1000.0
    timeout_s: float | None = None

    def cost_usd(self, usage: TokenUsage) -> float:
        """Price of `usage`. Unpriced cache tokens cost what input tokens cost."""
        read = self.cache_read_usd_per_mtok
        write = self.cache_write_usd_per_mtok
        return (
            usage.input_tokens * self.input_usd_per_mtok
            + usage.output_tokens * self.output_usd_per_mtok
            + usage.cache_read_tokens * (self.input_usd_per_mtok if read is None else read)
            + usage.cache_write_tokens * (self.input_usd_per_mtok if write is None else write)
        ) / _PER_MTOK


class ObjectiveWeights(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Weights of the model-choice objective; each term is normalised to 0..1 first."""

    cost: float = 1.0
    latency: float = 0.5
    quality: float = 1.0


class RoutingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Tier thresholds on the complexity score, objective weights and fallback chains.

    `fallbacks` maps a model name to the names tried after it, replacing the
    default chain (same tier by objective, then stronger tiers, then weaker).
    `max_rounds` bounds passes over the chain; between passes the router
    waits `retry_backoff_s`, or until a Retry-After or cooldown ends, but
    never more than `max_wait_s` nor past the task's deadline.
    `offline_fallback` appends the offline provider to every chain.
    """

    weights: ObjectiveWeights = ObjectiveWeights()
    medium_threshold: float = 0.3
    large_threshold: float = 0.6
    fallbacks: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)
    max_rounds: int = 2
    retry_backoff_s: float = 0.5
    max_wait_s: float = 30.0
    offline_fallback: bool = False


class CooldownConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A deployment rests `cooldown_s` after `failures` failures within `window_s`."""

    failures: int = 3
    window_s: float = 60.0
    cooldown_s: float = 30.0
    quota_cooldown_s: float = 300.0


class CacheConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Response cache policy. `sampled` also caches requests with temperature > 0."""

    enabled: bool = True
    ttl_s: float = 24 * 3600.0
    sampled: bool = False


class LLMConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The `[llm]` table: providers by name, models (deployments), policies."""

    providers: dict[str, ProviderConfig] = msgspec.field(default_factory=dict)
    models: tuple[ModelConfig, ...] = ()
    routing: RoutingConfig = RoutingConfig()
    cooldown: CooldownConfig = CooldownConfig()
    cache: CacheConfig = CacheConfig()
    governor: GovernorConfig = GovernorConfig()

    def model(self, name: str) -> ModelConfig:
        for model in self.models:
            if model.name == name:
                return model
        raise ConfigError(f"unknown model {name!r}")


def _validate(config: LLMConfig) -> LLMConfig:
    names = [m.name for m in config.models]
    if len(set(names)) != len(names):
        raise ConfigError(f"model names must be unique: {names}")
    for model in config.models:
        if model.provider not in config.providers:
            raise ConfigError(f"model {model.name!r} names unknown provider {model.provider!r}")
    for head, chain in config.routing.fallbacks.items():
        for name in (head, *chain):
            if name not in names:
                raise ConfigError(f"fallback chain of {head!r} names unknown model {name!r}")
    if not 0 <= config.routing.medium_threshold <= config.routing.large_threshold <= 1:
        raise ConfigError("need 0 <= medium_threshold <= large_threshold <= 1")
    if (problem := check_governor(config.governor, set(names), set(config.providers))) is not None:
        raise ConfigError(problem)
    return config


def _check_provider_kinds(providers: object) -> None:
    # Before msgspec, whose enum error ("Invalid enum value 'antropic'") names
    # neither the provider nor the kinds that would have worked.
    if not isinstance(providers, Mapping):
        return  # msgspec reports the wrong type
    known = {k.value for k in ProviderKind}
    for name, body in providers.items():
        kind = body.get("kind") if isinstance(body, Mapping) else None
        if isinstance(kind, str) and kind not in known:  # other types: msgspec says
            raise UnknownProviderKindError(str(name), kind)


def config_from_mapping(data: Mapping[str, Any]) -> LLMConfig:
    """Build and validate a config from a decoded mapping (e.g. a fleet file's `[llm]`)."""
    _check_provider_kinds(data.get("providers"))
    try:
        config = msgspec.convert(dict(data), LLMConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid llm config: {exc}") from None
    return _validate(config)


def load_config(path: str | Path, *, table: str | None = None) -> LLMConfig:
    """Load a TOML file; `table="llm"` reads the `[llm]` table of a fleet file."""
    try:
        data: dict[str, Any] = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if table is not None:
        data = data.get(table, {})
    return config_from_mapping(data)
