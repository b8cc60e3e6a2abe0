"""Idempotent provisioning of every stream, KV bucket and the object store.

Retention follows docs/protocol.md, "Streams, buckets, object store". Running it again with the same
settings changes nothing; with new limits it updates the streams in place.
"""

import logging
from dataclasses import dataclass, replace

import msgspec
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js import errors as js_errors
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from natsfleet.protocols import Bucket, Stream, Subjects

log = logging.getLogger(__name__)

DAY_S = 86_400.0


class StorageConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Retention and limits of the fleet's JetStream assets."""

    replicas: int = 1
    memory: bool = False  # file storage unless asked: the no-loss promise needs it
    tasks_max_msgs: int = 100_000  # beyond it a submit is refused (backpressure)
    submit_dedup_window_s: float = 120.0
    results_dedup_window_s: float = 600.0
    events_max_age_s: float = 7 * DAY_S
    events_per_task: int = 1_000
    dlq_max_age_s: float = 30 * DAY_S
    spans_max_age_s: float = DAY_S
    spans_max_bytes: int = 256 * 1024 * 1024
    # Output of running tasks, for watchers that come late or come back.
    output_max_age_s: float = DAY_S
    output_max_bytes: int = 1024 * 1024 * 1024
    idem_ttl_s: float = DAY_S
    agents_ttl_s: float = 30.0
    cache_ttl_s: float = DAY_S
    # Longer than a day, so a day's budget outlives its day; every live key is rewritten often.
    governor_ttl_s: float = 3 * DAY_S
    blobs_ttl_s: float = 7 * DAY_S
    # The agent loop's journal: as long as a task may still be retried.
    journal_ttl_s: float = 7 * DAY_S
    # Sessions (conversations across tasks): idle this long, a session is gone.
    sessions_ttl_s: float = 30 * DAY_S


@dataclass(slots=True)
class Provisioned:
    kv: dict[Bucket, KeyValue]
    blobs: ObjectStore


def stream_configs(subjects: Subjects, cfg: StorageConfig) -> list[js_api.StreamConfig]:
    storage = js_api.StorageType.MEMORY if cfg.memory else js_api.StorageType.FILE

    def make(stream: Stream, **params: object) -> js_api.StreamConfig:
        return js_api.StreamConfig(
            name=subjects.stream(stream),
            subjects=subjects.stream_subjects(stream),
            storage=storage,
            num_replicas=cfg.replicas,
            **params,  # type: ignore[arg-type]
        )

    return [
        make(
            Stream.TASKS,
            retention=js_api.RetentionPolicy.WORK_QUEUE,
            discard=js_api.DiscardPolicy.NEW,
            max_msgs=cfg.tasks_max_msgs,
            duplicate_window=cfg.submit_dedup_window_s,
        ),
        make(
            Stream.RESULTS,
            retention=js_api.RetentionPolicy.WORK_QUEUE,
            duplicate_window=cfg.results_dedup_window_s,
        ),
        make(
            Stream.EVENTS,
            retention=js_api.RetentionPolicy.LIMITS,
            max_age=cfg.events_max_age_s,
            max_msgs_per_subject=cfg.events_per_task,
        ),
        make(Stream.DLQ, retention=js_api.RetentionPolicy.LIMITS, max_age=cfg.dlq_max_age_s),
        make(
            Stream.SPANS,
            retention=js_api.RetentionPolicy.LIMITS,
            max_age=cfg.spans_max_age_s,
            max_bytes=cfg.spans_max_bytes,
        ),
        make(
            Stream.OUTPUT,
            retention=js_api.RetentionPolicy.LIMITS,
            max_age=cfg.output_max_age_s,
            max_bytes=cfg.output_max_bytes,
            # An agent that repeats a flush after a lost ack stores it once.
            duplicate_window=min(120.0, cfg.output_max_age_s),
        ),
    ]


def bucket_ttls(cfg: StorageConfig) -> dict[Bucket, float | None]:
    # STATE and WORKFLOWS have no bucket TTL: a running task must not expire.
    # A terminal task record carries its own TTL (`Nats-TTL`, the retention);
    # the supervisor deletes finished runs past their retention. LEASES carry
    # their own expiry inside the value, checked on compare-and-set.
    return {
        Bucket.STATE: None,
        Bucket.IDEM: cfg.idem_ttl_s,
        Bucket.AGENTS: cfg.agents_ttl_s,
        Bucket.LEASES: None,
        Bucket.CACHE: cfg.cache_ttl_s,
        Bucket.WORKFLOWS: None,
        Bucket.GOVERNOR: cfg.governor_ttl_s,
        Bucket.JOURNAL: cfg.journal_ttl_s,
        Bucket.SESSIONS: cfg.sessions_ttl_s,
    }


async def _ensure_stream(js: JetStreamContext, config: js_api.StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except js_errors.BadRequestError:
        # Exists with other limits: bring it to this configuration.
        await js.update_stream(config)
        log.info("stream %s updated to the configured limits", config.name)


async def _ensure_bucket(
    js: JetStreamContext, name: str, ttl_s: float | None, cfg: StorageConfig
) -> KeyValue:
    storage = js_api.StorageType.MEMORY if cfg.memory else js_api.StorageType.FILE
    try:
        return await js.create_key_value(
            config=js_api.KeyValueConfig(
                bucket=name, history=1, ttl=ttl_s, storage=storage, replicas=cfg.replicas
            )
        )
    except js_errors.BadRequestError:
        log.warning("KV bucket %s exists with other settings; using it as it is", name)
        kv = await js.key_value(name)
        await _allow_msg_ttl(js, kv)
        return kv


async def _allow_msg_ttl(js: JetStreamContext, kv: KeyValue) -> None:
    """Let an existing bucket take per-message TTLs (nats-py creates new ones so).

    Terminal task records expire by `Nats-TTL` (docs/supervisor.md); a bucket
    made by an older version lacks the flag, and a server (2.11+) rejects the
    header on such a stream. Enabling it is one-way and changes nothing else.
    """
    config = (await kv.status()).stream_info.config
    if config.allow_msg_ttl:
        return
    try:
        await js.update_stream(replace(config, allow_msg_ttl=True))
        log.info("KV bucket stream %s now allows per-message TTLs", config.name)
    except js_errors.Error as exc:  # an older server: records then never expire
        log.warning("stream %s cannot allow per-message TTLs: %s", config.name, exc)


async def provision(
    js: JetStreamContext, subjects: Subjects, cfg: StorageConfig | None = None
) -> Provisioned:
    """Create or update every stream, KV bucket and the object store."""
    cfg = cfg or StorageConfig()
    for stream_config in stream_configs(subjects, cfg):
        await _ensure_stream(js, stream_config)
    kv = {
        bucket: await _ensure_bucket(js, subjects.bucket(bucket), ttl, cfg)
        for bucket, ttl in bucket_ttls(cfg).items()
    }
    storage = js_api.StorageType.MEMORY if cfg.memory else js_api.StorageType.FILE
    try:
        blobs = await js.create_object_store(
            bucket=subjects.object_store(),
            config=js_api.ObjectStoreConfig(
                ttl=cfg.blobs_ttl_s,
                storage=storage,
                replicas=cfg.replicas,
            ),
        )
    except js_errors.BadRequestError:
        blobs = await js.object_store(subjects.object_store())
    return Provisioned(kv=kv, blobs=blobs)
