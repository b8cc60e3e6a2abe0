"""Workflow runs in KV WORKFLOWS, changed only by compare-and-set, stamped with the epoch.

The same discipline as `TaskStore`: every write names the revision it read,
the lease is checked before every write, and a conflict with a newer epoch
means this supervisor was deposed.
"""

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from msgspec import structs
from nats.js import errors as js_errors
from nats.js.kv import KeyValue

from natsfleet.bus.kvread import latest_entries
from natsfleet.protocols import encode
from natsfleet.supervisor.errors import NotLeader, RevisionConflict
from natsfleet.supervisor.lease import Lease
from natsfleet.supervisor.workflows.state import WorkflowRun, decode_run

log = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class TrackedRun:
    run: WorkflowRun
    revision: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RunStore:
    """Runs by id: KV WORKFLOWS plus an in-memory index."""

    def __init__(self, kv: KeyValue, lease: Lease) -> None:
        self.kv = kv
        self.lease = lease
        self._runs: dict[str, TrackedRun] = {}

    def __iter__(self) -> Iterator[TrackedRun]:
        return iter(list(self._runs.values()))

    def get(self, run_id: str) -> TrackedRun | None:
        return self._runs.get(run_id)

    async def load_all(self) -> list[TrackedRun]:
        for entry in await latest_entries(self.kv):
            if entry.operation is not None or not entry.value:
                self._runs.pop(entry.key, None)
                continue
            try:
                run = decode_run(entry.value)
                self._runs[entry.key] = TrackedRun(run, entry.revision or 0)
            except Exception as exc:
                log.error("unreadable workflow run %s: %s", entry.key, exc)
        return list(self._runs.values())

    async def create(self, run: WorkflowRun) -> TrackedRun:
        """Write a new run, or return the stored one (a redelivered submission)."""
        self.lease.check()
        run = structs.replace(run, epoch=self.lease.epoch)
        try:
            revision = await self.kv.create(run.run_id, encode(run))
        except js_errors.KeyWrongLastSequenceError:
            entry = await self.kv.get(run.run_id)
            tracked = TrackedRun(decode_run(entry.value or b""), entry.revision or 0)
            return self._runs.setdefault(run.run_id, tracked)
        tracked = TrackedRun(run, revision)
        self._runs[run.run_id] = tracked
        return tracked

    async def write(self, tracked: TrackedRun, run: WorkflowRun) -> None:
        """Compare-and-set over the tracked revision (hold `tracked.lock`)."""
        self.lease.check()
        run = structs.replace(run, epoch=self.lease.epoch)
        try:
            revision = await self.kv.update(run.run_id, encode(run), last=tracked.revision)
        except js_errors.KeyWrongLastSequenceError:
            entry = await self.kv.get(run.run_id)
            stored = decode_run(entry.value or b"")
            if stored.epoch > self.lease.epoch:
                self.lease.drop()
                raise NotLeader(
                    self.lease.partition, f"run written by epoch {stored.epoch}"
                ) from None
            tracked.run, tracked.revision = stored, entry.revision or 0
            raise RevisionConflict(run.run_id, tracked.revision) from None
        tracked.run = run
        tracked.revision = revision

    async def delete(self, tracked: TrackedRun) -> None:
        self.lease.check()
        await self.kv.delete(tracked.run.run_id, last=tracked.revision)
        self._runs.pop(tracked.run.run_id, None)
