"""Task records in KV STATE, changed only by compare-and-set, with their events.

The store keeps every unfinished record in memory with the KV revision it
read or wrote. A write sends `Nats-Expected-Last-Subject-Sequence` = that
revision, so a write from anyone holding an older view fails; each written
record carries the writer's lease epoch. The lease is checked before every
write, so a supervisor that may have been deposed sends nothing at all.

A terminal record is written with a per-message TTL (`Nats-TTL` = the
retention), so KV STATE forgets it on its own, and it leaves memory as soon
as its terminal event is acknowledged: memory holds the live tasks only.
Whoever needs a finished task reads it from KV (`fetch`, `load`).
"""

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from msgspec import structs
from nats.js import api as js_api
from nats.js import errors as js_errors
from nats.js.kv import VALID_KEY_RE, KeyValue

from natsfleet.bus import Bus
from natsfleet.bus.kvread import latest_entries
from natsfleet.protocols import (
    NULL_RAW,
    Bucket,
    Codec,
    TaskEvent,
    TaskRecord,
    TaskState,
    encode,
    idempotency_digest,
    is_terminal,
)
from natsfleet.supervisor.errors import NotLeader, RevisionConflict
from natsfleet.supervisor.lease import Lease

log = logging.getLogger(__name__)

_RECORD = Codec[TaskRecord](TaskRecord)
_VALID_KEY = VALID_KEY_RE
_EXPECTED_LAST = js_api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value
_MSG_TTL = js_api.Header.MSG_TTL.value
# JSStreamWrongLastSequenceErrF, JSStreamWrongLastSequenceConstantErr (as nats.js.kv)
_WRONG_LAST_SEQUENCE = (10071, 10164)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True, eq=False)
class Tracked:
    """A task record as last read or written, with its KV revision."""

    record: TaskRecord
    revision: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Accept seen for the current token (the record stays `assigned`: the
    # accept is not a transition recovery needs, so it is not written).
    accepted: bool = False

    @property
    def task_id(self) -> str:
        return self.record.task_id

    def shown(self) -> TaskRecord:
        """The record as clients see it (`working` once accepted)."""
        if self.accepted and self.record.state == TaskState.ASSIGNED:
            return structs.replace(self.record, state=TaskState.WORKING)
        return self.record


class TaskStore:
    """The supervisor's task records: KV STATE plus an in-memory index of live ones.

    `retention_s` is the per-message TTL of terminal records; it is sent only
    when the bucket allows per-message TTLs (`ttl_enabled`, nats-server 2.11+),
    since a server rejects the header on a stream that does not. `on_write`
    hears every record this store wrote, as written (the term's
    `Deadlines.arm`: every write arms the record's deadlines, deadlines.py).
    """

    def __init__(
        self,
        bus: Bus,
        kv: KeyValue,
        lease: Lease,
        *,
        retention_s: float | None = None,
        ttl_enabled: bool = False,
        on_write: Callable[[TaskRecord], None] | None = None,
    ) -> None:
        self.bus = bus
        self.kv = kv
        self.lease = lease
        self._on_write = on_write
        self._tasks: dict[str, Tracked] = {}
        self._ttl_s = (
            max(1, math.ceil(retention_s)) if retention_s is not None and ttl_enabled else None
        )

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[Tracked]:
        return iter(list(self._tasks.values()))

    def get(self, task_id: str) -> Tracked | None:
        """A record this term tracks in memory (a live task, or one just ended)."""
        return self._tasks.get(task_id)

    def track(self, tracked: Tracked) -> Tracked:
        """Keep `tracked` in memory unless the task is tracked already; the tracked one."""
        return self._tasks.setdefault(tracked.task_id, tracked)

    def forget(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)

    async def load(self, task_id: str) -> Tracked | None:
        """The record as stored in KV (not kept in memory); None if there is none."""
        try:
            entry = await self.kv.get(task_id)
        except (js_errors.KeyNotFoundError, js_errors.InvalidKeyError):
            return None
        if not entry.value:
            return None
        return Tracked(record=_RECORD.decode(entry.value), revision=entry.revision or 0)

    async def fetch(self, task_id: str) -> Tracked | None:
        """The record from memory, else from KV (a finished task, or one never seen).

        A record read from KV is not kept in memory; to act on an unfinished
        one that this term does not track, use `Engine.find` (it adopts it).
        """
        tracked = self._tasks.get(task_id)
        if tracked is not None:
            return tracked
        return await self.load(task_id)

    async def load_all(self) -> list[Tracked]:
        """Every record in STATE (one ordered consumer, not one get per key).

        Only unfinished ones are kept in memory; all are returned.
        """
        loaded: list[Tracked] = []
        for entry in await latest_entries(self.kv, self.bus.config.js_timeout_s):
            if entry.operation is not None or not entry.value:
                self._tasks.pop(entry.key, None)
                continue
            try:
                record = _RECORD.decode(entry.value)
            except Exception as exc:
                log.error("unreadable task record %s: %s", entry.key, exc)
                continue
            tracked = Tracked(record=record, revision=entry.revision or 0)
            loaded.append(tracked)
            if is_terminal(record.state):
                self._tasks.pop(entry.key, None)
            else:
                self._tasks[entry.key] = tracked
        return loaded

    def _ttl(self, record: TaskRecord) -> float | None:
        return self._ttl_s if is_terminal(record.state) else None

    async def _cas(self, key: str, data: bytes, last: int, ttl_s: float | None = None) -> int:
        """Write `data` if the key's last revision is `last` (0: no entry); the new revision.

        What `KeyValue.update` does, through the bus's pipelined publishes
        (no inbox, timer and `wait_for` per write).
        """
        if not _VALID_KEY.match(key) or key[0] == "." or key[-1] == ".":
            raise js_errors.InvalidKeyError(key)
        headers = {_EXPECTED_LAST: str(last)}
        if ttl_s is not None:
            headers[_MSG_TTL] = str(int(ttl_s))
        future = await self.bus.publish_async(self.bus.kv_subject(Bucket.STATE, key), data, headers)
        try:
            return (await future).seq
        except js_errors.APIError as err:
            if err.err_code in _WRONG_LAST_SEQUENCE:
                raise js_errors.KeyWrongLastSequenceError(description=err.description) from None
            raise

    async def create(self, record: TaskRecord) -> Tracked | None:
        """Write a new record; None if the task already exists (a duplicate submit)."""
        self.lease.check()
        record = _stamp(record, self.lease.epoch)
        data = encode(record)
        try:
            revision = await self._cas(record.task_id, data, 0, self._ttl(record))
        except js_errors.KeyWrongLastSequenceError:
            try:  # a deleted key's tombstone: `create` re-creates over it
                revision = await self.kv.create(record.task_id, data, msg_ttl=self._ttl(record))
            except js_errors.KeyWrongLastSequenceError:
                return None  # the caller decides: a duplicate, or a record to adopt
        tracked = Tracked(record=record, revision=revision)
        self._tasks[record.task_id] = tracked
        if self._on_write is not None:
            self._on_write(record)
        return tracked

    async def write(self, tracked: Tracked, record: TaskRecord) -> None:
        """Compare-and-set `record` over the tracked revision (hold `tracked.lock`)."""
        self.lease.check()
        record = _stamp(record, self.lease.epoch)
        try:
            revision = await self._cas(
                record.task_id, encode(record), tracked.revision, self._ttl(record)
            )
        except js_errors.KeyWrongLastSequenceError:
            await self._conflict(tracked)
            raise  # pragma: no cover - _conflict always raises
        if record.state != tracked.record.state or record.token != tracked.record.token:
            tracked.accepted = False
        tracked.record = record
        tracked.revision = revision
        if self._on_write is not None:
            self._on_write(record)

    async def _conflict(self, tracked: Tracked) -> None:
        try:
            entry = await self.kv.get(tracked.task_id)
            stored = _RECORD.decode(entry.value or b"")
        except Exception:
            raise RevisionConflict(tracked.task_id, tracked.revision) from None
        if stored.epoch > self.lease.epoch:
            self.lease.drop()
            raise NotLeader(self.lease.partition, f"task written by epoch {stored.epoch}")
        # Same epoch (ours): our view was stale; take the stored one and let
        # the caller's message be redelivered and handled against it.
        tracked.record = stored
        tracked.revision = entry.revision or 0
        raise RevisionConflict(tracked.task_id, tracked.revision)

    # -- events -------------------------------------------------------------------

    async def emit(self, event: TaskEvent) -> None:
        """Publish a task event; terminal ones are acknowledged and deduplicated.

        Intermediate events are fire-and-forget (the EVENTS stream still keeps
        them): recovery never needs them, and waiting for each ack would put a
        round trip on the hot path. A terminal event is what `wait()` returns,
        so it is published with a stream ack and `Msg-Id` `<task>:final`; a
        restarted supervisor can re-send it without a duplicate.
        """
        subject = self.bus.subjects.events(event.task_id)
        if is_terminal(event.state):
            await self.bus.publish_js(subject, event, msg_id=f"{event.task_id}:final")
            # Announced for good: the finished task now lives in KV only.
            tracked = self._tasks.get(event.task_id)
            if tracked is not None and is_terminal(tracked.record.state):
                del self._tasks[event.task_id]
        else:
            await self.bus.publish(subject, event)

    async def emit_final_again(self, record: TaskRecord) -> None:
        await self.emit(event_for(record))


def _stamp(record: TaskRecord, epoch: int) -> TaskRecord:
    return structs.replace(record, epoch=epoch)


def event_for(record: TaskRecord, *, detail: str = "", state: TaskState | None = None) -> TaskEvent:
    """The event announcing `record`'s current state."""
    terminal = is_terminal(record.state)
    key = record.idempotency_key
    return TaskEvent(
        task_id=record.task_id,
        state=state or record.state,
        at_ms=record.updated_ms or now_ms(),
        attempt=record.attempts,
        instance_id=record.instance_id,
        # No token: every agent user may read EVENTS, and a token is the
        # attempt's credential for its outcome (docs/operations.md).
        token=None,
        detail=detail,
        error=record.error if record.state != TaskState.COMPLETED else None,
        output=record.output if terminal else NULL_RAW,
        skill=record.skill,
        key_hash=None if key is None else idempotency_digest(key),
        output_ref=record.output_ref if terminal else None,
    )
