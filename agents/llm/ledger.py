"""The cost ledger: per call, per task and per workflow, with budgets.

A task's ledger is a child of its workflow's ledger (when the workflow runs
in this process), so every call rolls up. What travels on the wire is the
task total as a `natsfleet.protocols.Usage` in the Result; the supervisor
adds sub-tasks' Usage into the workflow's.
"""

from collections.abc import Iterator

import msgspec

from natsfleet.agents.llm.complexity import estimate_tokens
from natsfleet.agents.llm.config import ModelConfig
from natsfleet.agents.llm.errors import BudgetExceeded
from natsfleet.agents.llm.types import LLMRequest, LLMResponse, TokenUsage
from natsfleet.protocols import Usage


class CallRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One LLM call as the ledger keeps it."""

    deployment: str
    provider: str
    model: str
    usage: TokenUsage
    cost_usd: float
    latency_ms: float
    cached: bool = False
    offline: bool = False

    @classmethod
    def of(cls, response: LLMResponse) -> "CallRecord":
        return cls(
            deployment=response.deployment,
            provider=response.provider,
            model=response.model,
            usage=response.usage,
            cost_usd=response.cost_usd,
            latency_ms=response.latency_ms,
            cached=response.cached,
            offline=response.offline,
        )

    def as_usage(self) -> Usage:
        u = self.usage
        return Usage(
            calls=1,
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_read_tokens=u.cache_read_tokens,
            cache_write_tokens=u.cache_write_tokens,
            cost_usd=self.cost_usd,
        )


def estimate_cost_usd(request: LLMRequest, model: ModelConfig) -> float:
    """Upper-bound cost of a call: the prompt estimate plus every allowed output token."""
    output = min(request.max_tokens, model.max_output_tokens)
    return model.cost_usd(TokenUsage(input_tokens=estimate_tokens(request), output_tokens=output))


class Ledger:
    """Spend of one scope (`task <id>` or `workflow <id>`), with an optional budget.

    `check` runs before a call with its estimate; `record` adds the real cost
    to this ledger and every parent, then raises `BudgetExceeded` if any of
    them is over budget (the spend is recorded either way: it happened).
    """

    def __init__(
        self, scope: str, *, budget_usd: float | None = None, parent: "Ledger | None" = None
    ) -> None:
        self.scope = scope
        self.budget_usd = budget_usd
        self.parent = parent
        self.usage = Usage()
        self.calls: list[CallRecord] = []

    def child(self, scope: str, *, budget_usd: float | None = None) -> "Ledger":
        """A sub-scope (a task of this workflow, a sub-task) that rolls up into this one."""
        return Ledger(scope, budget_usd=budget_usd, parent=self)

    @property
    def spent_usd(self) -> float:
        return self.usage.cost_usd

    def _chain(self) -> Iterator["Ledger"]:
        ledger: Ledger | None = self
        while ledger is not None:
            yield ledger
            ledger = ledger.parent

    def remaining_usd(self) -> float | None:
        """The tightest budget left along the chain, or None if nothing is limited."""
        left = [lg.budget_usd - lg.spent_usd for lg in self._chain() if lg.budget_usd is not None]
        return min(left) if left else None

    def check(self, estimate_usd: float = 0.0) -> None:
        """Raise `BudgetExceeded` if a call of `estimate_usd` would break any budget."""
        for lg in self._chain():
            if lg.budget_usd is not None and lg.spent_usd + estimate_usd > lg.budget_usd:
                raise BudgetExceeded(
                    scope=lg.scope,
                    spent_usd=lg.spent_usd,
                    limit_usd=lg.budget_usd,
                    estimate_usd=estimate_usd,
                )

    def record(self, call: CallRecord) -> None:
        usage = call.as_usage()
        for lg in self._chain():
            lg.usage = lg.usage + usage
            lg.calls.append(call)
        self.check()
