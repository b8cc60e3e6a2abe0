"""GenAI spans for LLM calls: one `chat <model>` span per provider attempt.

Attributes follow OpenTelemetry's GenAI semantic conventions
(`gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`,
`gen_ai.response.model`, `gen_ai.usage.*`, `gen_ai.response.finish_reasons`,
`error.type`) plus the router's own (`natsfleet.llm.*`: tier, attempt,
deployment, cache hit, cost). Prompts and outputs are never recorded.
Nothing happens unless natsfleet tracing is on.
"""

from typing import TYPE_CHECKING, Any

from opentelemetry import metrics

from natsfleet.agents.llm.config import ModelConfig
from natsfleet.agents.llm.errors import LLMError
from natsfleet.agents.llm.types import LLMResponse, Tier
from natsfleet.telemetry import tracing

if TYPE_CHECKING:
    from opentelemetry.trace import Span


def start_chat(
    model: ModelConfig, provider_kind: str, tier: Tier, attempt: int, *, cache_hit: bool = False
) -> "Span | None":
    tracer = tracing.tracer()
    if tracer is None:
        return None
    from opentelemetry.trace import SpanKind

    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider_kind,
        "gen_ai.request.model": model.model,
        "natsfleet.llm.deployment": model.name,
        "natsfleet.llm.tier": tier.value,
        "natsfleet.llm.attempt": attempt,
        "natsfleet.llm.cache_hit": cache_hit,
    }
    return tracer.start_span(f"chat {model.model}", kind=SpanKind.CLIENT, attributes=attributes)


_meter = metrics.get_meter("natsfleet.llm")
_tokens = _meter.create_counter(
    "natsfleet.llm.tokens", unit="{token}", description="LLM tokens by model and type"
)
_cost = _meter.create_counter("natsfleet.llm.cost", unit="USD", description="LLM cost by model")


def end_ok(span: "Span | None", response: LLMResponse, model: ModelConfig) -> None:
    usage = response.usage
    # Metrics whether or not tracing is on (no-ops unless metrics are configured).
    labels = {"model": model.model, "provider": response.provider or model.provider}
    _tokens.add(usage.input_tokens, {**labels, "type": "input"})
    _tokens.add(usage.output_tokens, {**labels, "type": "output"})
    if not response.offline:
        _cost.add(model.cost_usd(usage), labels)
    if span is None:
        return
    span.set_attributes(
        {
            "gen_ai.response.model": response.model or model.model,
            "gen_ai.usage.input_tokens": usage.input_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
            "gen_ai.response.finish_reasons": (response.finish_reason,),
            "natsfleet.llm.cost_usd": 0.0 if response.offline else model.cost_usd(usage),
            "natsfleet.llm.offline": response.offline,
        }
    )
    span.end()


def end_error(span: "Span | None", error: BaseException) -> None:
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    kind = error.kind.value if isinstance(error, LLMError) else type(error).__name__
    span.set_attribute("error.type", kind)
    # The class and kind only: provider messages can echo request content.
    span.set_status(Status(StatusCode.ERROR, kind))
    span.end()


def cache_hit(response: LLMResponse, model: ModelConfig | None, tier: Tier) -> None:
    """A zero-length span marking an answer served from the fleet's cache."""
    tracer = tracing.tracer()
    if tracer is None:
        return
    from opentelemetry.trace import SpanKind

    name = model.model if model else response.model
    span = tracer.start_span(
        f"chat {name}",
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": response.provider,
            "gen_ai.request.model": name,
            "gen_ai.response.model": response.model,
            "natsfleet.llm.tier": tier.value,
            "natsfleet.llm.cache_hit": True,
            "natsfleet.llm.cost_usd": 0.0,
        },
    )
    span.end()
