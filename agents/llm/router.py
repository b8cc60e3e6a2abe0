"""The router: tier, chain, fallback with per-error rules, cooldown, cache, ledger.

Rules, by error kind (errors.py): rate limit, overloaded, 5xx, timeout,
connection and quota move to the next deployment (quota also rests the
deployment at once; Retry-After rests it that long); context length moves to
a model with a larger window; auth and bad request fail at once. When the
chain is exhausted by transient errors, the router waits for the earliest
deployment to be usable again (bounded by the deadline) and makes one more
pass (`routing.max_rounds`).
"""

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from natsfleet.agents.llm import telemetry
from natsfleet.agents.llm.cache import CacheStore, cache_key, decode_hit, encode_response
from natsfleet.agents.llm.cache import wants_cache as _wants_cache
from natsfleet.agents.llm.complexity import choose_tier, estimate_tokens
from natsfleet.agents.llm.config import LLMConfig, ModelConfig
from natsfleet.agents.llm.cooldown import Cooldowns
from natsfleet.agents.llm.errors import (
    BudgetExceeded,
    ErrorKind,
    LLMError,
    LLMTimeout,
    NoDeploymentAvailable,
    StreamInterrupted,
)
from natsfleet.agents.llm.health import DeploymentHealth
from natsfleet.agents.llm.ledger import CallRecord, Ledger, estimate_cost_usd
from natsfleet.agents.llm.providers import Provider, build_providers
from natsfleet.agents.llm.selection import chain, larger_context
from natsfleet.agents.llm.types import (
    Done,
    LLMRequest,
    LLMResponse,
    StreamEvent,
    TextDelta,
    Tier,
    ToolCallDelta,
)

if TYPE_CHECKING:
    from natsfleet.agents.llm.governor import CallScope, Governor, Permit
    from natsfleet.agents.llm.task import TaskLLM

log = logging.getLogger(__name__)

T = TypeVar("T")
Attempt = Callable[[Provider, ModelConfig, float], Awaitable[T]]
_FAIL_AT_ONCE = frozenset({ErrorKind.AUTH, ErrorKind.BAD_REQUEST})
_PULL_BACKOFF_S = 0.05
_LATENCY_EWMA = 0.2


class _Opened(msgspec.Struct):
    """A stream that produced its first chunk (so it can no longer fall back)."""

    head: list[StreamEvent]
    rest: AsyncGenerator[StreamEvent, None]
    span: Any = None  # its `chat` span, ended when the stream ends


class Router:
    """Routes neutral requests to providers. One per process, shared by its tasks.

    `deadline` arguments are `time.monotonic()` instants; `ledger` receives
    every call and enforces budgets. With a `governor` (governor.py), rate
    limits, budgets and deployment health are the fleet's, not the process's.
    """

    def __init__(
        self,
        config: LLMConfig,
        *,
        providers: Mapping[str, Provider],
        models: Sequence[ModelConfig],
        cache: CacheStore | None = None,
        governor: "Governor | None" = None,
    ) -> None:
        self.config = config
        self.models = tuple(models)
        self.providers = dict(providers)
        self.cache = cache
        self.governor = governor
        self.cooldowns: DeploymentHealth = (
            governor.health if governor is not None else Cooldowns(config.cooldown)
        )
        self._latency_ms: dict[str, float] = {}

    @classmethod
    def from_config(
        cls,
        config: LLMConfig,
        *,
        cache: CacheStore | None = None,
        env: Mapping[str, str] | None = None,
        governor: "Governor | None" = None,
    ) -> "Router":
        """Build providers for every keyed provider; with no key anywhere, go offline."""
        providers, models = build_providers(config, env)
        return cls(config, providers=providers, models=models, cache=cache, governor=governor)

    async def aclose(self) -> None:
        """Close every provider's HTTP client. Idempotent."""
        providers, self.providers = list(self.providers.values()), {}
        for provider in providers:
            await provider.aclose()

    async def __aenter__(self) -> "Router":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def offline(self) -> bool:
        """True when every deployment is the offline provider (no API key configured)."""
        return all(self.providers[m.provider].offline for m in self.models)

    def bind(
        self,
        *,
        task_id: str,
        remaining_s: float | None = None,
        budget_usd: float | None = None,
        parent: Ledger | None = None,
        on_chunk: Callable[[str], Awaitable[None]] | None = None,
        workflow_id: str | None = None,
        tenant: str | None = None,
    ) -> "TaskLLM":
        """The per-task view the agent runtime puts in `ctx.llm`."""
        from natsfleet.agents.llm.task import TaskLLM

        return TaskLLM(
            self,
            task_id=task_id,
            remaining_s=remaining_s,
            budget_usd=budget_usd,
            parent=parent,
            on_chunk=on_chunk,
            workflow_id=workflow_id,
            tenant=tenant,
        )

    def plan(self, request: LLMRequest) -> tuple[Tier, list[ModelConfig]]:
        """The tier and ordered fallback chain this request would use (for tests and logs)."""
        tier = choose_tier(request, self.config.routing)
        if request.model is not None and all(m.name != request.model for m in self.models):
            raise NoDeploymentAvailable(
                (),
                detail=f"model {request.model!r} is not available "
                "(not configured, or its provider has no API key)",
            )
        models = chain(
            self.models,
            tier,
            self.config.routing,
            self._latency_ms,
            pinned=request.model,
            min_context_tokens=estimate_tokens(request),
        )
        # The offline provider is a last resort, whatever the objective says of it.
        models.sort(key=lambda m: self.providers[m.provider].offline)
        return tier, models

    def _provider_kind(self, model: ModelConfig) -> str:
        provider = self.config.providers.get(model.provider)
        return provider.kind.value if provider is not None else model.provider

    def _route(self, request: LLMRequest, tier: Tier) -> str:
        return f"model:{request.model}" if request.model else f"tier:{tier.value}"

    def _wants_cache(self, request: LLMRequest) -> bool:
        return self.cache is not None and _wants_cache(request, self.config.cache)

    async def _cache_get(self, key: str) -> LLMResponse | None:
        assert self.cache is not None
        try:
            data = await self.cache.get(key)
        except Exception as exc:  # a cache outage must not fail the call
            log.warning("llm cache read failed: %s", type(exc).__name__)
            return None
        return decode_hit(data) if data else None

    async def _cache_put(self, key: str, response: LLMResponse) -> None:
        # Offline answers are free and would shadow a real model once a key is added.
        if self.cache is None or response.offline:
            return
        try:
            await self.cache.put(key, encode_response(response))
        except Exception as exc:
            log.warning("llm cache write failed: %s", type(exc).__name__)

    def _finish(self, response: LLMResponse, model: ModelConfig, started: float) -> LLMResponse:
        latency_ms = (time.monotonic() - started) * 1000.0
        old = self._latency_ms.get(model.name, model.latency_ms)
        self._latency_ms[model.name] = old + _LATENCY_EWMA * (latency_ms - old)
        return msgspec.structs.replace(
            response,
            deployment=model.name,
            latency_ms=latency_ms,
            cost_usd=0.0 if response.offline else model.cost_usd(response.usage),
        )

    async def complete(
        self,
        request: LLMRequest,
        *,
        deadline: float | None = None,
        ledger: Ledger | None = None,
        fallback: bool = True,
        scope: "CallScope | None" = None,
    ) -> LLMResponse:
        """One complete answer, with fallback. Raises a typed `LLMError`."""
        started = time.monotonic()
        tier, models = self.plan(request)
        key = cache_key(request, self._route(request, tier)) if self._wants_cache(request) else ""
        if key and (hit := await self._cache_get(key)) is not None:
            telemetry.cache_hit(hit, models[0] if models else None, tier)
            return self._recorded(hit, ledger)
        attempts = 0

        async def attempt(provider: Provider, model: ModelConfig, timeout_s: float) -> LLMResponse:
            nonlocal attempts
            attempts += 1
            span = telemetry.start_chat(model, self._provider_kind(model), tier, attempts)
            try:
                response = await provider.complete(request, model, timeout_s=timeout_s)
            except BaseException as exc:  # timeouts arrive as cancellation
                telemetry.end_error(span, exc)
                raise
            telemetry.end_ok(span, response, model)
            return response

        models = models if fallback else models[:1]
        response, model, permit = await self._run(request, models, deadline, ledger, attempt, scope)
        self.cooldowns.success(model.name)
        response = self._finish(response, model, started)
        _settle(permit, response)
        if key:
            await self._cache_put(key, response)
        return self._recorded(response, ledger)

    def _recorded(self, response: LLMResponse, ledger: Ledger | None) -> LLMResponse:
        if ledger is not None:
            ledger.record(CallRecord.of(response))
        return response

    async def stream(
        self,
        request: LLMRequest,
        *,
        deadline: float | None = None,
        ledger: Ledger | None = None,
        fallback: bool = True,
        scope: "CallScope | None" = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Deltas, then `Done`. Falls back only before the first chunk; after it, a
        failure raises `StreamInterrupted` (the caller already showed the text).
        """
        started = time.monotonic()
        tier, models = self.plan(request)
        key = cache_key(request, self._route(request, tier)) if self._wants_cache(request) else ""
        if key and (hit := await self._cache_get(key)) is not None:
            telemetry.cache_hit(hit, models[0] if models else None, tier)
            if hit.text:
                yield TextDelta(text=hit.text)
            yield Done(response=self._recorded(hit, ledger))
            return
        attempts = 0

        async def attempt(provider: Provider, model: ModelConfig, timeout_s: float) -> _Opened:
            nonlocal attempts
            attempts += 1
            span = telemetry.start_chat(model, self._provider_kind(model), tier, attempts)
            try:
                opened = await _open(provider.stream(request, model, timeout_s=timeout_s))
            except BaseException as exc:  # timeouts arrive as cancellation
                telemetry.end_error(span, exc)
                raise
            opened.span = span
            return opened

        models = models if fallback else models[:1]
        opened, model, permit = await self._run(request, models, deadline, ledger, attempt, scope)
        first_chunk_ms = (time.monotonic() - started) * 1000.0
        done: Done | None = None
        try:
            async with aclosing(_relay(opened, model, deadline)) as events:
                async for event in events:
                    if isinstance(event, Done):
                        done = event
                    else:
                        yield event
        except StreamInterrupted as exc:
            _interrupted(permit)
            telemetry.end_error(opened.span, exc)
            # Running out of the task's time is not the deployment's fault.
            if deadline is None or time.monotonic() < deadline:
                self.cooldowns.failure(model.name, exc.cause)
            raise
        except BaseException as exc:  # closed early or cancelled: the span still ends
            if done is None:
                telemetry.end_error(opened.span, exc)
                _interrupted(permit)
            raise
        assert done is not None  # _relay ends with Done or raises
        self.cooldowns.success(model.name)
        response = self._finish(done.response, model, started)
        response = msgspec.structs.replace(response, first_chunk_ms=first_chunk_ms)
        _settle(permit, response)
        telemetry.end_ok(opened.span, response, model)
        if key:
            await self._cache_put(key, response)
        yield Done(response=self._recorded(response, ledger))

    def _attempt_timeout(self, model: ModelConfig, deadline: float | None) -> float:
        provider_cfg = self.config.providers.get(model.provider)
        limit = model.timeout_s or (provider_cfg.timeout_s if provider_cfg else 120.0)
        if deadline is None:
            return limit
        left = deadline - time.monotonic()
        if left <= 0:
            raise LLMTimeout("task deadline reached before the call", deployment=model.name)
        return min(limit, left)

    async def _run(
        self,
        request: LLMRequest,
        models: list[ModelConfig],
        deadline: float | None,
        ledger: Ledger | None,
        attempt: Attempt[T],
        scope: "CallScope | None" = None,
    ) -> tuple[T, ModelConfig, "Permit | None"]:
        """Walk the chain under the per-error rules; returns the first success
        (and its governor permit, to settle once the cost is known)."""
        errors: list[LLMError] = []
        budget: BudgetExceeded | None = None
        for round_ in range(max(1, self.config.routing.max_rounds)):
            pending = list(models)
            while pending:
                model = pending.pop(0)
                if not self.cooldowns.is_available(model.name):
                    continue
                permit = await self._clear(request, model, deadline, ledger, scope)
                if isinstance(permit, BudgetExceeded):
                    budget = budget or permit  # a cheaper deployment may still fit
                    continue
                if isinstance(permit, LLMError):  # throttled, or the governor is unreachable
                    errors.append(permit)
                    continue
                try:
                    outcome = await self._try(model, deadline, attempt)
                except BaseException:  # cancelled mid-call: it may have been billed
                    _interrupted(permit)
                    raise
                if not isinstance(outcome, LLMError):
                    return outcome, model, permit
                _settle(permit, None)
                errors.append(outcome)
                if outcome.kind in _FAIL_AT_ONCE:
                    raise outcome
                if outcome.kind is ErrorKind.CONTEXT_LENGTH:
                    pending = larger_context(pending, model)
                    if not pending:
                        raise outcome
            if not await self._wait_for_next_round(models, errors, deadline, round_):
                break
        if budget is not None and not errors:
            raise budget
        _raise_if_all_throttled(errors)
        detail = "every deployment is cooling down" if models else "no deployment fits the prompt"
        raise NoDeploymentAvailable(tuple(errors), detail=detail)

    async def _clear(
        self,
        request: LLMRequest,
        model: ModelConfig,
        deadline: float | None,
        ledger: Ledger | None,
        scope: "CallScope | None",
    ) -> "Permit | LLMError | None":
        """Check the local budget, then (with a governor) wait for the fleet's rate
        limits and reserve the fleet's budgets. A refusal is returned, not raised."""
        try:
            if ledger is not None:
                ledger.check(estimate_cost_usd(request, model))
            if self.governor is None:
                return None
            return await self.governor.admit(
                request,
                model,
                deadline=deadline,
                hold_s=self._attempt_timeout(model, deadline),
                scope=scope,
            )
        except LLMError as exc:
            return exc

    async def _try(
        self, model: ModelConfig, deadline: float | None, attempt: Attempt[T]
    ) -> T | LLMError:
        """One attempt on one deployment, bounded in time; its error is returned, not raised."""
        timeout_s = self._attempt_timeout(model, deadline)
        error: LLMError
        try:
            async with asyncio.timeout(timeout_s):
                result = await attempt(self.providers[model.provider], model, timeout_s)
        except TimeoutError:
            error = LLMTimeout(f"no answer within {timeout_s:.3f} s", deployment=model.name)
        except LLMError as exc:
            error = exc
        else:
            # Success is recorded by the caller: a stream has only begun here.
            return result
        log.info("llm call to %s failed: %s", model.name, error.kind.value)
        # Running out of the task's time is not the deployment's fault.
        if deadline is None or time.monotonic() < deadline:
            self.cooldowns.failure(model.name, error)
        return error

    async def _wait_for_next_round(
        self,
        models: list[ModelConfig],
        errors: list[LLMError],
        deadline: float | None,
        round_: int,
    ) -> bool:
        """Sleep until a deployment is usable again, if rounds, deadline and patience allow.

        Transient errors wait at least `retry_backoff_s`; a Retry-After or a
        cooldown waits until the earliest deployment is usable again.
        """
        routing = self.config.routing
        if round_ + 1 >= routing.max_rounds or not models:
            return False
        if errors and not errors[-1].retryable:
            return False
        now = time.monotonic()
        ready = min(self.cooldowns.available_at(m.name) for m in models)
        if not errors and ready <= now:
            return False  # nothing failed and nothing rests: only budget skips
        wake = max(ready, now + routing.retry_backoff_s) if errors else ready
        if wake - now > routing.max_wait_s or (deadline is not None and wake >= deadline):
            return False
        await asyncio.sleep(wake - now)
        return True


def _settle(permit: "Permit | None", response: LLMResponse | None) -> None:
    if permit is not None:
        permit.settle(response)


def _interrupted(permit: "Permit | None") -> None:
    if permit is not None:
        permit.interrupted()


def _raise_if_all_throttled(errors: list[LLMError]) -> None:
    # Every deployment is at its fleet-wide limit: say so, rather than "unavailable".
    if errors and all(e.kind is ErrorKind.THROTTLED for e in errors):
        raise errors[0]


async def _relay(
    opened: _Opened, model: ModelConfig, deadline: float | None
) -> AsyncGenerator[StreamEvent, None]:
    """The rest of an opened stream, each chunk bounded by the deadline; ends with `Done`.

    Any failure here comes after the first chunk, so it is a `StreamInterrupted`.
    """
    sent: list[str] = []
    try:
        for event in opened.head:
            sent.append(event.text if isinstance(event, TextDelta) else "")
            yield event
        while not isinstance(event, Done):
            async with asyncio.timeout_at(deadline):
                event = await anext(opened.rest)
            sent.append(event.text if isinstance(event, TextDelta) else "")
            yield event
    except TimeoutError:
        cause: LLMError = LLMTimeout("task deadline reached mid-stream", deployment=model.name)
        raise StreamInterrupted(cause, partial_text="".join(sent)) from None
    except StopAsyncIteration:
        cause = LLMError("stream ended without completing", deployment=model.name)
        raise StreamInterrupted(cause, partial_text="".join(sent)) from None
    except LLMError as exc:
        raise StreamInterrupted(exc, partial_text="".join(sent)) from exc
    finally:
        await opened.rest.aclose()


async def _open(events: AsyncGenerator[StreamEvent, None]) -> _Opened:
    """Pull until the first content chunk (or the end), so errors before it can fall back."""
    head: list[StreamEvent] = []
    try:
        while True:
            event = await anext(events)
            head.append(event)
            if isinstance(event, TextDelta | ToolCallDelta | Done):
                return _Opened(head=head, rest=events)
    except StopAsyncIteration:
        raise LLMError("stream ended without a response") from None
    except BaseException:
        await events.aclose()
        raise
