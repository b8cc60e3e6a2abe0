"""The response cache: canonical-request keys, a tiny store protocol, JetStream KV.

Shared by every agent in the fleet through the KV bucket CACHE (with a TTL).
Only complete responses are stored; a hit is returned with `cached=True` and
costs nothing.
"""

import hashlib
import logging
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
