"""One KV key holding a msgspec Struct, changed only by compare-and-set, with batching.

Callers hand `apply` a pure function of the state. Calls that arrive while
another call of this process is writing the same key wait and are then
applied together, in arrival order, in one compare-and-set: contention on a
key is between processes, not between the coroutines of one process, and a
busy process pays about one KV write per batch rather than per call.

The cell remembers the revision it last saw, so an uncontended write is one
KV operation; a conflict costs a read and a retry.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from natsfleet.agents.llm.errors import LLMError

S = TypeVar("S", bound=msgspec.Struct)
R = TypeVar("R")
#: A pure function of the current state: the new state and the caller's result.
Op = Callable[[S], tuple[S, R]]

#: Conflicts in a row before giving up; each conflict means another process wrote.
MAX_CONFLICTS = 64


class GovernorUnavailable(LLMError):
    """The governor's KV bucket could not be read or written; retryable."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"fleet governor: {detail}", retryable=True)


@dataclass
class KVStats:
    """KV operations made by the governor of this process (for the bench and metrics)."""

    reads: int = 0
    writes: int = 0
    conflicts: int = 0

    @property
    def ops(self) -> int:
        return self.reads + self.writes


@dataclass
class _Entry:
    op: Callable[[Any], tuple[Any, Any]]
    future: "asyncio.Future[Any]" = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class KVCell(Generic[S]):
    """The state under one key; `apply` is safe across coroutines and processes."""

    def __init__(
        self, kv: KeyValue, key: str, kind: type[S], stats: KVStats, empty: Callable[[], S]
    ) -> None:
        self.kv = kv
        self.key = key
        self._kind = kind
        self._decoder = msgspec.json.Decoder(kind)
        self._stats = stats
        self._empty = empty
        # (state, revision); revision 0 = we believe the key does not exist yet.
        self._seen: tuple[S, int] = (empty(), 0)
        self._pending: list[_Entry] = []
        self._lock = asyncio.Lock()

    @property
    def last_seen(self) -> S:
        """The state as of this process's last read or write (may be stale)."""
        return self._seen[0]

    def observe(self, state: S, revision: int) -> None:
        """A newer state seen elsewhere (a KV watch): saves the next write a conflict."""
        if revision > self._seen[1]:
            self._seen = (state, revision)

    async def read(self) -> S:
        """The current state from the server."""
        await self._refresh()
        return self._seen[0]

    async def apply(self, op: Op[S, R]) -> R:
        """Apply `op` atomically to the fleet's state; returns its result."""
        entry = _Entry(op)
        self._pending.append(entry)
        while not entry.future.done():
            async with self._lock:
                if entry.future.done():
                    break
                batch, self._pending = self._pending, []
                try:
                    await self._flush(batch)
                except BaseException:
                    # Others' calls go back in line for the next holder of the lock.
                    self._pending[:0] = [e for e in batch if e is not entry and not e.future.done()]
                    if not entry.future.done():
                        entry.future.cancel()
                    raise
        result: R = entry.future.result()
        return result

    async def _flush(self, batch: list[_Entry]) -> None:
        for _ in range(MAX_CONFLICTS):
            state, revision = self._seen
            results = []
            new = state
            for entry in batch:
                new, result = entry.op(new)
                results.append(result)
            if new is not state:
                try:
                    self._stats.writes += 1
                    rev = await self.kv.update(self.key, msgspec.json.encode(new), last=revision)
                except KeyWrongLastSequenceError:
                    self._stats.conflicts += 1
                    await self._refresh()
                    continue
                except Exception as exc:  # nats-py raises several types when the server is gone
                    raise GovernorUnavailable(f"{self.key}: {type(exc).__name__}") from exc
                self._seen = (new, rev)
            for entry, result in zip(batch, results, strict=True):
                entry.future.set_result(result)
            return
        raise GovernorUnavailable(f"{self.key}: {MAX_CONFLICTS} write conflicts in a row")

    async def _refresh(self) -> None:
        self._stats.reads += 1
        try:
            entry = await self.kv.get(self.key)
        except KeyNotFoundError as exc:
            # Deleted or purged keys report their marker's revision, which a write must name.
            marker = exc.entry
            self._seen = (self._empty(), (marker.revision or 0) if marker is not None else 0)
            return
        except Exception as exc:
            raise GovernorUnavailable(f"{self.key}: {type(exc).__name__}") from exc
        try:
            state = self._decoder.decode(entry.value or b"{}")
        except msgspec.DecodeError:
            # A value this version cannot read: start over rather than wedge every call.
            state = self._empty()
        self._seen = (state, entry.revision or 0)
