"""The response cache: canonical-request keys, a tiny store protocol, JetStream KV.

Shared by every agent in the fleet through the KV bucket CACHE (with a TTL).
Only complete responses are stored; a hit is returned with `cached=True` and
costs nothing.
"""

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from natsfleet.agents.llm.config import CacheConfig
from natsfleet.agents.llm.types import LLMRequest, LLMResponse, TokenUsage

log = logging.getLogger(__name__)

# Sorted keys make the encoding canonical: equal requests give equal bytes.
_CANONICAL = msgspec.json.Encoder(order="sorted")
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(LLMResponse)
_KEY_VERSION = b"natsfleet-llm-cache-v1\0"


class CacheStore(Protocol):
    """Bytes by key. Keys are hex digests, valid as NATS KV keys."""

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...


def cache_key(request: LLMRequest, route: str) -> str:
    """Hash of the canonical request: route (pinned model or tier), messages, tools, params.

    `cache` itself is policy, not content, so it is left out.
    """
    canonical = msgspec.structs.replace(request, cache=None, tier=None, model=None)
    digest = hashlib.sha256(_KEY_VERSION + route.encode() + b"\0")
    digest.update(_CANONICAL.encode(canonical))
    return digest.hexdigest()


def wants_cache(request: LLMRequest, config: CacheConfig) -> bool:
    """Deterministic requests use the cache; sampled ones only if asked (or configured)."""
    if not config.enabled or request.cache is False:
        return False
    if request.cache is True:
        return True
    sampled = request.temperature is not None and request.temperature > 0
    return config.sampled or not sampled


def encode_response(response: LLMResponse) -> bytes:
    return _ENCODER.encode(response)


def decode_hit(data: bytes) -> LLMResponse | None:
    """A stored response, marked as a hit with no cost, or None if it does not decode."""
    try:
        stored = _DECODER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        log.warning("undecodable LLM cache entry ignored")
        return None
    return msgspec.structs.replace(
        stored, cached=True, cost_usd=0.0, usage=TokenUsage(), latency_ms=0.0, first_chunk_ms=None
    )


class KVCacheStore:
    """`CacheStore` over a nats-py JetStream `KeyValue` bucket (TTL set on the bucket)."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def get(self, key: str) -> bytes | None:
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        return entry.value or None

    async def put(self, key: str, value: bytes) -> None:
        await self._kv.put(key, value)


async def open_kv_cache(js: JetStreamContext, bucket: str, *, ttl_s: float) -> KVCacheStore:
    """Bind to the cache bucket, creating it with `ttl_s` if it does not exist yet."""
    try:
        kv = await js.key_value(bucket)
    except BucketNotFoundError:
        kv = await js.create_key_value(
            KeyValueConfig(bucket=bucket, ttl=ttl_s, history=1, direct=True)
        )
    return KVCacheStore(kv)


class LazyCacheStore:
    """A `CacheStore` whose bucket may not exist yet.

    The supervisor creates the CACHE bucket; an agent that starts first would
    otherwise run uncached for its whole life. Until `lookup` succeeds, each
    get/put looks again, at most once per wait (doubling from
    `retry_initial_s` to `retry_max_s`), and meanwhile acts as an empty cache.
    Once found the store is kept.
    """

    def __init__(
        self,
        lookup: Callable[[], Awaitable[CacheStore]],
        *,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._wait_s = retry_initial_s
        self._max_s = retry_max_s
        self._clock = clock
        self._store: CacheStore | None = None
        self._next_try = float("-inf")
        self._lock = asyncio.Lock()

    async def _found(self) -> CacheStore | None:
        if self._store is not None or self._clock() < self._next_try:
            return self._store
        async with self._lock:  # one lookup at a time, however many calls wait
            if self._store is not None or self._clock() < self._next_try:
                return self._store
            try:
                self._store = await self._lookup()
            except Exception as exc:  # nats-py raises several types for a missing bucket
                self._next_try = self._clock() + self._wait_s
                self._wait_s = min(self._wait_s * 2, self._max_s)
                log.debug("LLM cache bucket still unavailable: %s", exc)
                return None
            log.info("LLM cache bucket found: responses are cached from now on")
            return self._store

    async def ready(self) -> bool:
        """Whether the bucket is found (looking for it now if its wait is over)."""
        return await self._found() is not None

    async def get(self, key: str) -> bytes | None:
        store = await self._found()
        return None if store is None else await store.get(key)

    async def put(self, key: str, value: bytes) -> None:
        store = await self._found()
        if store is not None:
            await store.put(key, value)
