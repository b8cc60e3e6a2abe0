"""Task records in KV STATE, changed only by compare-and-set, with their events.

The store keeps every record it knows in memory with the KV revision it read
or wrote. A write sends `Nats-Expected-Last-Subject-Sequence` = that revision,
so a write from anyone holding an older view fails; each written record
carries the writer's lease epoch. The lease is checked before every write, so
a supervisor that may have been deposed sends nothing at all.
"""

import asyncio
import logging
import time
from collections.abc import Iterator
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
    is_terminal,
)
from natsfleet.supervisor.errors import NotLeader, RevisionConflict
from natsfleet.supervisor.lease import Lease

log = logging.getLogger(__name__)

_RECORD = Codec[TaskRecord](TaskRecord)
_VALID_KEY = VALID_KEY_RE
_EXPECTED_LAST = js_api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value
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
    """The supervisor's task records: KV STATE plus an in-memory index."""

    def __init__(self, bus: Bus, kv: KeyValue, lease: Lease) -> None:
        self.bus = bus
        self.kv = kv
        self.lease = lease
        self._tasks: dict[str, Tracked] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[Tracked]:
        return iter(list(self._tasks.values()))

    def get(self, task_id: str) -> Tracked | None:
        return self._tasks.get(task_id)

    def forget(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)

    async def fetch(self, task_id: str) -> Tracked | None:
        """The record from memory, else from KV (a task this process has not seen)."""
        tracked = self._tasks.get(task_id)
        if tracked is not None:
            return tracked
        try:
            entry = await self.kv.get(task_id)
        except (js_errors.KeyNotFoundError, js_errors.InvalidKeyError):
            return None
        if not entry.value:
            return None
        tracked = Tracked(record=_RECORD.decode(entry.value), revision=entry.revision or 0)
        return self._tasks.setdefault(task_id, tracked)

    async def load_all(self) -> list[Tracked]:
        """Every record in STATE (one ordered consumer, not one get per key)."""
        for entry in await latest_entries(self.kv, self.bus.config.js_timeout_s):
            if entry.operation is not None or not entry.value:
                self._tasks.pop(entry.key, None)
                continue
            try:
                record = _RECORD.decode(entry.value)
            except Exception as exc:
                log.error("unreadable task record %s: %s", entry.key, exc)
                continue
            self._tasks[entry.key] = Tracked(record=record, revision=entry.revision or 0)
        return list(self._tasks.values())

    async def _cas(self, key: str, data: bytes, last: int) -> int:
        """Write `data` if the key's last revision is `last` (0: no entry); the new revision.

        What `KeyValue.update` does, through the bus's pipelined publishes
        (no inbox, timer and `wait_for` per write).
        """
        if not _VALID_KEY.match(key) or key[0] == "." or key[-1] == ".":
            raise js_errors.InvalidKeyError(key)
        headers = {_EXPECTED_LAST: str(last)}
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
            revision = await self._cas(record.task_id, data, 0)
        except js_errors.KeyWrongLastSequenceError:
            try:  # a deleted key's tombstone: `create` re-creates over it
                revision = await self.kv.create(record.task_id, data)
            except js_errors.KeyWrongLastSequenceError:
                await self.fetch(record.task_id)
                return None
        tracked = Tracked(record=record, revision=revision)
        self._tasks[record.task_id] = tracked
        return tracked

    async def write(self, tracked: Tracked, record: TaskRecord) -> None:
        """Compare-and-set `record` over the tracked revision (hold `tracked.lock`)."""
        self.lease.check()
        record = _stamp(record, self.lease.epoch)
        try:
            revision = await self._cas(record.task_id, encode(record), tracked.revision)
        except js_errors.KeyWrongLastSequenceError:
            await self._conflict(tracked)
            raise  # pragma: no cover - _conflict always raises
        if record.state != tracked.record.state or record.token != tracked.record.token:
            tracked.accepted = False
        tracked.record = record
        tracked.revision = revision

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

    async def delete(self, tracked: Tracked) -> None:
        self.lease.check()
        await self.kv.delete(tracked.task_id, last=tracked.revision)
        self._tasks.pop(tracked.task_id, None)

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
        else:
            await self.bus.publish(subject, event)

    async def emit_final_again(self, record: TaskRecord) -> None:
        await self.emit(event_for(record))


def _stamp(record: TaskRecord, epoch: int) -> TaskRecord:
    return structs.replace(record, epoch=epoch)


def event_for(record: TaskRecord, *, detail: str = "", state: TaskState | None = None) -> TaskEvent:
    """The event announcing `record`'s current state."""
    terminal = is_terminal(record.state)
    return TaskEvent(
        task_id=record.task_id,
        state=state or record.state,
        at_ms=record.updated_ms or now_ms(),
        attempt=record.attempts,
        instance_id=record.instance_id,
        token=record.token,
        detail=detail,
        error=record.error if record.state != TaskState.COMPLETED else None,
        output=record.output if terminal else NULL_RAW,
        skill=record.skill,
    )
