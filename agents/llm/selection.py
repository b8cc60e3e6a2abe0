"""Which deployments to try, in which order: the objective and the fallback chain."""

from collections.abc import Mapping, Sequence

from natsfleet.agents.llm.config import ModelConfig, RoutingConfig
from natsfleet.agents.llm.types import Tier


def objective(
    model: ModelConfig,
    peers: Sequence[ModelConfig],
    routing: RoutingConfig,
    latency_ms: Mapping[str, float],
) -> float:
    """Lower is better: weighted cost and latency (each / the peers' max) minus quality."""
    w = routing.weights

    def price(m: ModelConfig) -> float:
        # A typical call reads more than it writes; 3:1 keeps both prices in play.
        return 3 * m.input_usd_per_mtok + m.output_usd_per_mtok

    def lat(m: ModelConfig) -> float:
        return latency_ms.get(m.name, m.latency_ms)

    max_price = max((price(m) for m in peers), default=0.0) or 1.0
    max_lat = max((lat(m) for m in peers), default=0.0) or 1.0
    return (
        w.cost * price(model) / max_price
        + w.latency * lat(model) / max_lat
        - w.quality * model.quality
    )


def chain(
    models: Sequence[ModelConfig],
    tier: Tier,
    routing: RoutingConfig,
    latency_ms: Mapping[str, float],
    *,
    pinned: str | None = None,
    min_context_tokens: int = 0,
) -> list[ModelConfig]:
    """The ordered fallback chain for a call.

    A pinned model (or the best of the tier) leads; a configured chain for
    the leader replaces the default, which is the rest of the tier by
    objective, then stronger tiers, then weaker ones. Models whose context
    window cannot hold the prompt are left out.
    """
    by_name = {m.name: m for m in models}
    fits = [m for m in models if m.context_window_tokens >= min_context_tokens]

    def rank(m: ModelConfig) -> tuple[int, float, str]:
        distance = m.tier.rank - tier.rank
        # Same tier first, then stronger (0 < d), then weaker, nearest first.
        group = 0 if distance == 0 else (distance if distance > 0 else 10 - distance)
        return (group, objective(m, fits, routing, latency_ms), m.name)

    ordered = sorted(fits, key=rank)
    if pinned is not None:
        lead = by_name.get(pinned)
        ordered = [lead] + [m for m in ordered if m is not lead] if lead else []
    if ordered and ordered[0].name in routing.fallbacks:
        head = ordered[0]
        ordered = [head] + [by_name[n] for n in routing.fallbacks[head.name] if n in by_name]
    return ordered


def larger_context(remaining: Sequence[ModelConfig], failed: ModelConfig) -> list[ModelConfig]:
    """After a context-length error: only the models with a larger window, smallest first."""
    bigger = [m for m in remaining if m.context_window_tokens > failed.context_window_tokens]
    return sorted(bigger, key=lambda m: m.context_window_tokens)
