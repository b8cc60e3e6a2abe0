"""The `[llm.governor]` table: fleet-wide rate limits, budgets and shared health.

Every limit here is for the whole fleet: all processes that share the NATS
account and prefix count against it through the GOVERNOR KV bucket
(docs/llm.md, "The fleet-wide governor").
"""

import msgspec


class RateLimit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Requests and tokens per `window_s` (a minute unless the governor says otherwise).

    `burst_s` lets that many seconds' worth of capacity go at once after a quiet
    spell; with the default 0 calls are paced evenly, so no window of
    `window_s` ever sees more than `rpm` requests.
    """

    rpm: int | None = None
    tpm: int | None = None
    burst_s: float = 0.0

    @property
    def limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None


class TenantConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One tenant's limits; unset fields fall back to the governor's `tenant_*` defaults."""

    rpm: int | None = None
    tpm: int | None = None
    daily_budget_usd: float | None = None


class GovernorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Fleet-wide limits. `enabled = false` (the default) keeps every limit per process.

    Attributes:
        enabled: turn the governor on (the agent runtime then uses the GOVERNOR bucket).
        window_s: the rate window ("per minute"); tests shrink it.
        deployments: limits per deployment (model name).
        api_keys: limits per provider entry's API key; entries sharing a key share
            the limit (the key is identified by a hash, never stored).
        tenant_rpm, tenant_tpm, tenant_daily_budget_usd: every tenant's defaults.
        tenants: per-tenant overrides.
        daily_budget_usd: the whole fleet's spend per UTC day.
        reservation_grace_s: a budget reservation lives for the call's time bound
            plus this, then expires (so a dead process never holds budget).
        probe_s: after a cooldown the fleet lets one probe call through; another
            process may probe again after this long without an answer.
    """

    enabled: bool = False
    window_s: float = 60.0
    deployments: dict[str, RateLimit] = msgspec.field(default_factory=dict)
    api_keys: dict[str, RateLimit] = msgspec.field(default_factory=dict)
    tenant_rpm: int | None = None
    tenant_tpm: int | None = None
    tenant_daily_budget_usd: float | None = None
    tenants: dict[str, TenantConfig] = msgspec.field(default_factory=dict)
    daily_budget_usd: float | None = None
    reservation_grace_s: float = 30.0
    probe_s: float = 30.0

    def tenant_limit(self, tenant: str) -> RateLimit:
        own = self.tenants.get(tenant, TenantConfig())
        return RateLimit(
            rpm=own.rpm if own.rpm is not None else self.tenant_rpm,
            tpm=own.tpm if own.tpm is not None else self.tenant_tpm,
        )

    def tenant_budget_usd(self, tenant: str) -> float | None:
        own = self.tenants.get(tenant, TenantConfig())
        return (
            own.daily_budget_usd
            if own.daily_budget_usd is not None
            else (self.tenant_daily_budget_usd)
        )


def check_governor(config: GovernorConfig, models: set[str], providers: set[str]) -> str | None:
    """The first inconsistency in `config`, or None."""
    if config.window_s <= 0:
        return "governor.window_s must be > 0"
    for name in config.deployments:
        if name not in models:
            return f"governor.deployments names unknown model {name!r}"
    for name in config.api_keys:
        if name not in providers:
            return f"governor.api_keys names unknown provider {name!r}"
    limits = [*config.deployments.values(), *config.api_keys.values()]
    limits += [RateLimit(rpm=t.rpm, tpm=t.tpm) for t in config.tenants.values()]
    limits.append(RateLimit(rpm=config.tenant_rpm, tpm=config.tenant_tpm))
    for limit in limits:
        for value in (limit.rpm, limit.tpm):
            if value is not None and value <= 0:
                return "governor rpm/tpm limits must be > 0"
        if limit.burst_s < 0:
            return "governor burst_s must be >= 0"
    budgets = [config.daily_budget_usd, config.tenant_daily_budget_usd]
    budgets += [t.daily_budget_usd for t in config.tenants.values()]
    if any(b is not None and b < 0 for b in budgets):
        return "governor budgets must be >= 0"
    if config.reservation_grace_s < 0 or config.probe_s <= 0:
        return "governor.reservation_grace_s must be >= 0 and probe_s > 0"
    return None
