"""The loop's journal: every model answer and tool result, fenced by the attempt.

All entries of one task live in KV bucket JOURNAL under `<task>.` (records.py
lists the keys). Every write is a JetStream publish carrying
`Nats-Expected-Last-Subject-Sequence` checked against the subject filter
`$KV.<bucket>.<task>.>` (`...-Subject` header, nats-server 2.11+): it is
stored only if nothing was written to *any* key of the task since this
attempt's last write. So the task's journal is one append-only log with
optimistic concurrency, and:

- an attempt first *claims* the journal: it reads every entry, and writes a
  `Claim` (its token and attempt number) on top of the last one it read;
- a newer attempt's claim moves the task's last sequence, so every later
  write of an older attempt (a zombie, a deposed one) is refused by the
  server (`JournalFencedError`), whatever it believes;
- an attempt never claims over a claim of a higher attempt number (a zombie
  that wakes before reaching its loop cannot take the journal back). Attempt
  numbers grow with every counted attempt; a hand-back keeps the number, and
  then the later claim wins, as it should.

A publish whose ack is lost is checked by reading the task's last entry: if
it is ours, it counts as written (the expected-sequence check is made before
JetStream's de-duplication, so a blind resend would be refused).
"""

import asyncio
import logging
import time
from collections.abc import Mapping

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js import errors as js_errors

from natsfleet.agents.loop.errors import JournalError, JournalFencedError
from natsfleet.agents.loop.fenced import (
    FencedLog,
    FencedOut,
)
from natsfleet.agents.loop.records import Claim, Record
from natsfleet.bus.streamread import read_from

log = logging.getLogger(__name__)

_PAGE = 1_000
#: A task's journal holds at most this many entries (a loop is bounded by max_turns).
MAX_ENTRIES = 20_000
_CLAIM_TRIES = 5

_ENCODER = msgspec.json.Encoder()
_DECODER: msgspec.json.Decoder[Record] = msgspec.json.Decoder(Record)


#: Someone else wrote to the task's journal since our last write.
_Conflict = FencedOut


class Journal:
    """One attempt's view of a task's journal. Writes are serialised here.

    Built by `open` (reads and claims). With `js=None` it keeps entries in
    memory only (a loop run outside a fleet, or with the journal off).
    """

    def __init__(
        self,
        js: JetStreamContext | None,
        *,
        bucket: str,
        task_id: str,
        token: str,
        attempt: int,
        instance_id: str,
        max_bytes: int = 1024 * 1024,
        timeout_s: float = 5.0,
    ) -> None:
        self._js = js
        self._stream = f"KV_{bucket}"
        self._base = f"$KV.{bucket}.{task_id}."
        self._filter = self._base + ">"
        self.task_id = task_id
        self.token = token
        self.attempt = attempt
        self.instance_id = instance_id
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._entries: dict[str, Record] = {}
        self._last_seq = 0
        self._lock = asyncio.Lock()
        #: Writes this attempt made (for tests and the loop's report).
        self.writes = 0

    @property
    def durable(self) -> bool:
        return self._js is not None

    @property
    def entries(self) -> Mapping[str, Record]:
        return self._entries

    def get(self, key: str) -> Record | None:
        return self._entries.get(key)

    async def open(self) -> "Journal":
        """Read the task's entries and claim the journal for this attempt."""
        if self._js is None:
            return self
        for _ in range(_CLAIM_TRIES):
            await self.load()
            claim = self._entries.get("claim")
            if isinstance(claim, Claim):
                if claim.token == self.token:
                    return self
                if claim.attempt > self.attempt:
                    raise JournalFencedError(
                        self.task_id, self.token, f"attempt {claim.attempt} owns it"
                    )
            mine = Claim(
                token=self.token,
                attempt=self.attempt,
                instance_id=self.instance_id,
                at_ms=int(time.time() * 1000),
            )
            try:
                await self._append("claim", mine)
            except _Conflict:
                continue  # another writer moved on: read again and decide again
            return self
        raise JournalError(f"could not claim task {self.task_id}'s journal")

    async def write(self, key: str, record: Record) -> None:
        """Append `record` under `<task>.<key>`, or raise `JournalFencedError`.

        A write once sent is seen through to its answer even if the attempt is
        cancelled meanwhile (shielded): a refused write is always logged, and
        the journal's view of the last sequence never goes stale.
        """
        async with self._lock:
            if self._js is None:
                self._entries[key] = record
                return
            inner = asyncio.ensure_future(self._fenced_append(key, record))
            # Retrieved even when nobody awaits it any more (the attempt was cancelled).
            inner.add_done_callback(lambda done: done.cancelled() or done.exception())
            await asyncio.shield(inner)

    async def _fenced_append(self, key: str, record: Record) -> None:
        try:
            await self._append(key, record)
        except _Conflict:
            log.warning(
                "journal of task %s refused %s from attempt %d: a newer attempt owns it",
                self.task_id,
                key,
                self.attempt,
                extra={"task_id": self.task_id, "token": self.token},
            )
            raise JournalFencedError(
                self.task_id, self.token, "a newer attempt wrote to the journal"
            ) from None

    async def _append(self, key: str, record: Record) -> None:
        data = _ENCODER.encode(record)
        if len(data) > self._max_bytes:
            raise JournalError(
                f"entry {key} is {len(data)} bytes, over {self._max_bytes}", retryable=False
            )
        try:
            seq = await self._log().append(self._base + key, data, self._last_seq)
        except js_errors.APIError as exc:  # a fence (FencedOut) passes on as _Conflict
            raise JournalError(f"write of {key} refused: {exc.description}") from exc
        if seq is None:
            raise JournalError(f"write of {key} not acknowledged")
        self._stored(key, record, seq)

    def _stored(self, key: str, record: Record, seq: int) -> None:
        self._entries[key] = record
        self._last_seq = seq
        self.writes += 1

    def _log(self) -> FencedLog:
        assert self._js is not None
        return FencedLog(self._js, self._stream, self._filter, self.token, self._timeout_s)

    async def _landed(self, subject: str, data: bytes) -> int | None:
        """The sequence of our write if it is the task's last entry (its ack was lost)."""
        return await self._log().landed(subject, data, self._last_seq)

    async def load(self) -> None:
        """Read every entry of the task (no claim: a reader, or before `open` decides)."""
        assert self._js is not None
        entries: dict[str, Record] = {}
        last = 0
        start = 1
        try:
            # A fetch from an empty filter waits out its timeout: ask for the last first.
            try:
                newest = await self._js.get_last_msg(self._stream, self._filter)
            except js_errors.NotFoundError:
                newest = None
            end = int(newest.seq or 0) if newest is not None else 0
            while start <= end:
                page = await read_from(self._js, self._stream, self._filter, start, _PAGE)
                for msg in page:
                    seq = msg.metadata.sequence.stream
                    last = max(last, seq)
                    start = seq + 1
                    if msg.headers and msg.headers.get("KV-Operation"):
                        continue  # a delete or purge marker
                    try:
                        entries[msg.subject.removeprefix(self._base)] = _DECODER.decode(msg.data)
                    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                        raise JournalError(
                            f"unreadable entry {msg.subject}: {exc}", retryable=False
                        ) from None
                if not page or len(entries) > MAX_ENTRIES:
                    break
        except (js_errors.Error, nats.errors.Error, TimeoutError) as exc:
            raise JournalError(f"cannot read task {self.task_id}'s journal: {exc!r}") from exc
        if len(entries) > MAX_ENTRIES:
            raise JournalError(
                f"task {self.task_id}'s journal holds over {MAX_ENTRIES} entries", retryable=False
            )
        self._entries = entries
        # The filter's last sequence, not the stream's: only this task's writes count.
        self._last_seq = last
