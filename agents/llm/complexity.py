"""Prompt-complexity score (0..1) and the tier it maps to.

Cheap features only (this runs on every call): length, code, reasoning
markers, tool count and conversation depth. A score is a hint for routing,
not a judgement, so it must be fast and predictable rather than clever.
"""

import re

from natsfleet.agents.llm.config import RoutingConfig
from natsfleet.agents.llm.types import LLMRequest, Tier

_CODE = re.compile(r"```|\bdef |\bclass |\bfunction\b|\breturn\b|[{};]\s*$|\bSELECT\b", re.M)
_REASONING = re.compile(
    r"\b(why|prove|proof|derive|step[- ]by[- ]step|analy[sz]e|compare|trade-?offs?|plan|"
    r"design|architect|optimi[sz]e|evaluate|justify|reason|debug|refactor)\b",
    re.I,
)


def estimate_tokens(request: LLMRequest) -> int:
    """A rough prompt size (4 characters a token) for routing and budget estimates."""
    chars = len(request.system) + sum(len(m.content) for m in request.messages)
    chars += sum(len(t.name) + len(t.description) + 40 for t in request.tools)
    return chars // 4 + 4 * len(request.messages)


def complexity(request: LLMRequest) -> float:
    """0 (trivial) .. 1 (hard). Each feature saturates so none dominates alone."""
    text = "\n".join(m.content for m in request.messages if m.role == "user")
    tokens = estimate_tokens(request)
    length = min(1.0, tokens / 4000)
    code = min(1.0, len(_CODE.findall(text)) / 4)
    reasoning = min(1.0, len(_REASONING.findall(text)) / 3)
    tools = min(1.0, len(request.tools) / 4)
    depth = min(1.0, len(request.messages) / 12)
    return round(0.3 * length + 0.25 * code + 0.3 * reasoning + 0.1 * tools + 0.05 * depth, 4)


def choose_tier(request: LLMRequest, routing: RoutingConfig) -> Tier:
    """The request's own tier if set, else the one its complexity score falls in."""
    if request.tier is not None:
        return request.tier
    score = complexity(request)
    if score >= routing.large_threshold:
        return Tier.LARGE
    if score >= routing.medium_threshold:
        return Tier.MEDIUM
    return Tier.SMALL
