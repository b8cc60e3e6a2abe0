"""One attempt's hold on a session: the lock, and the conversation it reads and extends.

A session's keys (session_records.py) are written with
`Nats-Expected-Last-Subject-Sequence` checked against `$KV.<bucket>.<session>.>`,
as the journal's are against a task (journal.py): a write is stored only if
nothing was written to the session since this attempt last read or wrote it.
So:

- **taking the lock** is a write of `SessionLock` on top of the last entry
  read, when the lock is free, ours, an earlier attempt's of the same task, or
  stale; two takers race and one is refused, reads again and waits;
- the holder **refreshes** it every `lock_ttl_s / 3`; a waiter that sees the
  session's last sequence unchanged for `lock_ttl_s` (its own clock: no clocks
  are compared) takes it over. Once taken over, every later write of the old
  holder is refused by the server (`SessionFencedError`);
- the conversation is written, then the lock released (`SessionFree`), by
  the holder only.

Two tasks of one session thus never interleave their turns: a loop's whole
exchange is written at once, by the attempt that held the lock for all of it.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js import errors as js_errors

from natsfleet.agents.loop.errors import LoopError
from natsfleet.agents.loop.fenced import FencedLog, FencedOut
from natsfleet.agents.loop.session_records import (
    Conversation,
    SessionConfig,
    SessionEntry,
    SessionFree,
    SessionLock,
)

log = logging.getLogger(__name__)

_POLL_FIRST_S = 0.02
_POLL_MAX_S = 0.25

ENCODER = msgspec.json.Encoder()
DECODER: msgspec.json.Decoder[SessionEntry] = msgspec.json.Decoder(SessionEntry)


class SessionError(LoopError):
    """A session could not be read or written (NATS trouble: retryable)."""

    def __init__(self, session_id: str, detail: str, *, retryable: bool = True) -> None:
        self.session_id = session_id
        self.detail = detail
        super().__init__(f"session {session_id}: {detail}", retryable=retryable)


class SessionBusyError(SessionError):
    """Another task held the session for as long as this one could wait.

    Retryable: the supervisor's retry policy runs the task again later.
    """

    def __init__(self, session_id: str, holder: str, waited_s: float) -> None:
        self.holder = holder
        super().__init__(
            session_id, f"held by task {holder}; waited {waited_s:.1f} s", retryable=True
        )


class SessionFencedError(SessionError):
    """Another attempt took the session over: this one must not write to it."""

    def __init__(self, session_id: str, detail: str) -> None:
        super().__init__(session_id, f"fenced: {detail}", retryable=False)


#: Someone wrote to the session since our last read or write.
_Conflict = FencedOut


def session_stream(bucket: str) -> str:
    return f"KV_{bucket}"


class SessionLog:
    """One attempt's view of one session (see the module docstring)."""

    def __init__(
        self,
        js: JetStreamContext,
        *,
        bucket: str,
        session_id: str,
        task_id: str,
        token: str,
        attempt: int,
        instance_id: str,
        config: SessionConfig,
        max_bytes: int = 1024 * 1024,
        timeout_s: float = 5.0,
        idle: Callable[[], AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        self._js = js
        self._idle = idle
        self._stream = session_stream(bucket)
        self._base = f"$KV.{bucket}.{session_id}."
        self._filter = self._base + ">"
        self.session_id = session_id
        self.task_id = task_id
        self.token = token
        self.attempt = attempt
        self.instance_id = instance_id
        self.config = config
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._last_seq = 0
        self._lock = asyncio.Lock()
        #: Set once another attempt took the session over while we held it.
        self.lost = asyncio.Event()
        #: How long `hold` waited for another task's lock (for tests and stats).
        self.waited_s = 0.0

    # -- reading -------------------------------------------------------------------

    async def read(self) -> tuple[int, Conversation, SessionLock | SessionFree | None]:
        """The session's last sequence, its conversation (empty if new) and its lock."""
        try:
            try:
                newest = await self._js.get_last_msg(self._stream, self._filter)
            except js_errors.NotFoundError:
                return 0, Conversation(budget_tokens=self.config.budget_tokens), None
            # Read after the sequence: a write in between makes our next write conflict.
            conv = await self._get("conv")
            lock = await self._get("lock")
        except (js_errors.Error, nats.errors.Error, TimeoutError) as exc:
            raise SessionError(self.session_id, f"cannot read: {exc!r}") from exc
        if conv is not None and not isinstance(conv, Conversation):
            raise SessionError(self.session_id, "conv is not a conversation", retryable=False)
        if isinstance(lock, Conversation):
            raise SessionError(self.session_id, "lock is not a lock", retryable=False)
        return (
            int(newest.seq or 0),
            conv or Conversation(budget_tokens=self.config.budget_tokens),
            lock,
        )

    async def _get(self, key: str) -> SessionEntry | None:
        try:
            msg = await self._js.get_last_msg(self._stream, self._base + key)
        except js_errors.NotFoundError:
            return None
        if not msg.data or (msg.headers and msg.headers.get("KV-Operation")):
            return None
        try:
            return DECODER.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise SessionError(
                self.session_id, f"unreadable {key}: {exc}", retryable=False
            ) from None

    # -- the lock ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def hold(self, deadline_s: float | None) -> AsyncIterator[Conversation]:
        """Take the session's lock (waiting at most `deadline_s` seconds, or
        `config.wait_s`), keep it refreshed, yield the conversation, release it."""
        refresher: asyncio.Task[None] | None = None
        try:
            # While it waits for another task, the attempt holds no agent slot
            # (`idle`); it takes one back after the refresher runs, so the lock
            # cannot go stale while it does.
            async with contextlib.AsyncExitStack() as waiting:
                conversation = await self._acquire(deadline_s, waiting)
                refresher = asyncio.create_task(self._refresh(), name=f"session-{self.session_id}")
            yield conversation
        finally:
            if refresher is not None:
                refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refresher
                await self._release()

    async def _acquire(
        self, deadline_s: float | None, waiting: contextlib.AsyncExitStack | None = None
    ) -> Conversation:
        loop = asyncio.get_running_loop()
        started = loop.time()
        wait_s = self.config.wait_s if deadline_s is None else min(self.config.wait_s, deadline_s)
        poll_s = _POLL_FIRST_S
        seen_seq, seen_at = -1, started
        announced = False
        while True:
            seq, conversation, lock = await self.read()
            now = loop.time()
            if seq != seen_seq:
                seen_seq, seen_at = seq, now
            holder = lock if isinstance(lock, SessionLock) else None
            if holder is not None and holder.task_id == self.task_id:
                if holder.attempt > self.attempt:
                    raise SessionFencedError(self.session_id, f"attempt {holder.attempt} owns it")
            elif holder is not None and now - seen_at < self.config.lock_ttl_s:
                if not announced:
                    announced = True
                    if self._idle is not None and waiting is not None:
                        await waiting.enter_async_context(self._idle())
                    log.info(
                        "session %s held by task %s: task %s waits",
                        self.session_id,
                        holder.task_id,
                        self.task_id,
                    )
                if now - started >= wait_s:
                    raise SessionBusyError(self.session_id, holder.task_id, now - started)
                await asyncio.sleep(min(poll_s, max(0.0, wait_s - (now - started))))
                poll_s = min(_POLL_MAX_S, poll_s * 2)
                continue
            elif holder is not None:
                log.warning(
                    "session %s: lock of task %s not refreshed for %.1f s; taking it over",
                    self.session_id,
                    holder.task_id,
                    now - seen_at,
                )
            self._last_seq = seq
            try:
                await self._append("lock", self._lock_record())
            except _Conflict:
                continue  # another writer moved on: read again and decide again
            self.waited_s = loop.time() - started
            return conversation

    def _lock_record(self) -> SessionLock:
        return SessionLock(
            task_id=self.task_id,
            token=self.token,
            attempt=self.attempt,
            instance_id=self.instance_id,
            at_ms=int(time.time() * 1000),
        )

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.config.lock_ttl_s / 3)
            try:
                await self.write_entry("lock", self._lock_record())
            except SessionFencedError:
                return
            except SessionError as exc:
                log.warning("session %s: lock refresh failed: %s", self.session_id, exc)

    async def _release(self) -> None:
        if self.lost.is_set():
            return
        free = SessionFree(task_id=self.task_id, at_ms=int(time.time() * 1000))
        try:
            await asyncio.shield(self.write_entry("lock", free))
        except SessionError as exc:
            # It expires: a waiter takes it over after lock_ttl_s.
            log.warning("session %s: lock not released: %s", self.session_id, exc)

    # -- writing -------------------------------------------------------------------

    async def write_entry(self, key: str, record: SessionEntry) -> None:
        """Write `record` on top of our last write, or raise `SessionFencedError`."""
        async with self._lock:
            if self.lost.is_set():
                raise SessionFencedError(self.session_id, "another attempt took the session")
            try:
                await self._append(key, record)
            except _Conflict:
                self.lost.set()
                log.warning(
                    "session %s refused %s from task %s attempt %d: it was taken over",
                    self.session_id,
                    key,
                    self.task_id,
                    self.attempt,
                )
                raise SessionFencedError(
                    self.session_id, "another attempt took the session"
                ) from None

    async def _append(self, key: str, record: SessionEntry) -> None:
        data = ENCODER.encode(record)
        if len(data) > self._max_bytes:
            raise SessionError(
                self.session_id,
                f"{key} is {len(data)} bytes, over {self._max_bytes}",
                retryable=False,
            )
        log = FencedLog(self._js, self._stream, self._filter, self.token, self._timeout_s)
        try:
            seq = await log.append(self._base + key, data, self._last_seq)
        except js_errors.APIError as exc:  # a fence (FencedOut) passes on as _Conflict
            raise SessionError(self.session_id, f"write refused: {exc.description}") from exc
        if seq is None:
            raise SessionError(self.session_id, f"write of {key} not acknowledged")
        self._last_seq = seq
