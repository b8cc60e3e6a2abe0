"""The LLM in the agent runtime: one `Router` per process, one `TaskLLM` per attempt.

The router's config is the `[llm]` table of the fleet file named by
`$NATSFLEET_FLEET_FILE`; without one, `default_llm_config()` (Anthropic and
OpenAI models, each used only if its key is in the environment, else the
offline provider). Its cache is the fleet-shared KV bucket CACHE. The SDKs
are imported only when a provider with a key is built.
"""

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import msgspec

from natsfleet.agents.llm import (
    CacheStore,
    KVCacheStore,
    LLMConfig,
    ModelConfig,
    ProviderConfig,
    ProviderKind,
    Router,
    TaskLLM,
    Tier,
    load_config,
)
from natsfleet.agents.llm.cache import LazyCacheStore
from natsfleet.agents.llm.governor import Governor, open_governor
from natsfleet.bus import Bus
from natsfleet.protocols import AttemptOutcome, Bucket

if TYPE_CHECKING:
    from natsfleet.agents.attempt import Attempt
    from natsfleet.agents.output import OutputBuffer

log = logging.getLogger(__name__)

FLEET_FILE_ENV = "NATSFLEET_FLEET_FILE"
#: A missing CACHE bucket is looked for again after 1 s, then 2, 4, ... up to 30 s.
CACHE_RETRY_INITIAL_S = 1.0
CACHE_RETRY_MAX_S = 30.0


def default_llm_config() -> LLMConfig:
    """Claude Haiku/Sonnet and GPT-4o mini/4o; a provider without a key is left out."""
    anthropic = ProviderConfig(kind=ProviderKind.ANTHROPIC)
    openai = ProviderConfig(kind=ProviderKind.OPENAI)
    models = (
        ModelConfig(
            name="haiku",
            provider="anthropic",
            model="claude-haiku-4-5",
            tier=Tier.SMALL,
            input_usd_per_mtok=1.0,
            output_usd_per_mtok=5.0,
            context_window_tokens=200_000,
            quality=0.6,
            latency_ms=800,
        ),
        ModelConfig(
            name="sonnet",
            provider="anthropic",
            model="claude-sonnet-4-5",
            tier=Tier.LARGE,
            input_usd_per_mtok=3.0,
            output_usd_per_mtok=15.0,
            context_window_tokens=200_000,
            quality=0.9,
            latency_ms=2000,
        ),
        ModelConfig(
            name="gpt-mini",
            provider="openai",
            model="gpt-4o-mini",
            tier=Tier.SMALL,
            input_usd_per_mtok=0.15,
            output_usd_per_mtok=0.6,
            quality=0.5,
            latency_ms=700,
        ),
        ModelConfig(
            name="gpt-4o",
            provider="openai",
            model="gpt-4o",
            tier=Tier.LARGE,
            input_usd_per_mtok=2.5,
            output_usd_per_mtok=10.0,
            quality=0.85,
            latency_ms=1500,
        ),
    )
    return LLMConfig(providers={"anthropic": anthropic, "openai": openai}, models=models)


def process_llm_config(env: Mapping[str, str] | None = None) -> LLMConfig:
    """The fleet file's `[llm]` table, or the default config when no fleet file is named.

    Raises:
        ConfigError: the fleet file's `[llm]` table is invalid.
        OSError: the named fleet file cannot be read.
    """
    path = (env if env is not None else os.environ).get(FLEET_FILE_ENV)
    if not path:
        return default_llm_config()
    return load_config(path, table="llm")


def with_usage(outcome: AttemptOutcome, llm: TaskLLM) -> AttemptOutcome:
    """The outcome carrying the attempt's LLM usage (so cost reaches task status)."""
    usage = llm.usage
    if usage.calls == 0:
        return outcome
    return msgspec.structs.replace(outcome, usage=usage)


class LLMBinding:
    """Owns the process's router; binds it to each attempt.

    Args:
        config: The LLM config; None reads `process_llm_config()` at `open`.
        use_cache: False leaves the fleet's KV cache out (tests of providers).
    """

    def __init__(
        self,
        config: LLMConfig | None = None,
        *,
        use_cache: bool = True,
        cache_retry_s: float = CACHE_RETRY_INITIAL_S,
    ) -> None:
        self._config = config
        self._use_cache = use_cache
        self._cache_retry_s = cache_retry_s
        self.router: Router | None = None
        self.governor: Governor | None = None

    async def open(self, bus: Bus) -> None:
        """Build the router (once). A missing cache bucket is looked up again later."""
        if self.router is not None:
            return
        config = self._config or process_llm_config()
        cache: CacheStore | None = None
        if self._use_cache and config.cache.enabled:

            async def lookup() -> CacheStore:
                return KVCacheStore(await bus.kv(Bucket.CACHE))

            lazy = LazyCacheStore(
                lookup, retry_initial_s=self._cache_retry_s, retry_max_s=CACHE_RETRY_MAX_S
            )
            if not await lazy.ready():
                log.warning(
                    "LLM cache bucket not there yet (the supervisor creates it): calls are "
                    "not cached until it is; looking again at most every %g s",
                    CACHE_RETRY_MAX_S,
                )
            cache = lazy
        if config.governor.enabled:
            self.governor = await open_governor(bus, config)
        self.router = Router.from_config(config, cache=cache, governor=self.governor)
        names = ", ".join(m.name for m in self.router.models)
        log.info("LLM router ready: %s%s", names, " (offline)" if self.router.offline else "")

    def bind(self, attempt: "Attempt", output: "OutputBuffer") -> TaskLLM | None:
        """The attempt's `ctx.llm`: its remaining time, budget, and a sink to `ctx.stream`."""
        if self.router is None:
            return None

        async def sink(text: str) -> None:
            output.add_text(text)

        remaining_s = None
        if attempt.deadline is not None:
            remaining_s = max(0.0, attempt.deadline - asyncio.get_running_loop().time())
        return self.router.bind(
            task_id=attempt.task_id,
            remaining_s=remaining_s,
            budget_usd=attempt.assign.budget_usd,
            on_chunk=sink,
            workflow_id=attempt.assign.workflow_id,
            tenant=attempt.assign.tenant,
        )

    async def aclose(self) -> None:
        if self.router is not None:
            await self.router.aclose()
        if self.governor is not None:
            await self.governor.aclose()
