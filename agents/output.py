"""Batched partial output and progress of running attempts.

`ctx.stream()` and `ctx.progress()` only record; one pump per process
publishes what accumulated every `output_flush_s`, so a skill streaming LLM
tokens sends a few messages a second, not one per token.

Traced, each publish joins the trace of the attempt that produced it: the
buffer keeps the skill's context from its latest `stream`/`progress` call,
and the pump publishes in (a copy of) that context, as the outbox does for
outcomes. Otherwise the pump's own task has no span and every output would
start a trace of its own.
"""

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable

from natsfleet.protocols import Message, OutputChunk, Progress
from natsfleet.telemetry import tracing

log = logging.getLogger(__name__)

#: Publishes one message on one subject: into the OUTPUT stream, which keeps
#: it for watchers that come late or come back (docs/operations.md, "Output streams").
Publish = Callable[[str, Message], Awaitable[None]]

# Above this much pending text a flush is not worth delaying.
_EAGER_FLUSH_CHARS = 32 * 1024
# Progress events (each one published, unlike the latest-wins progress) kept
# between two flushes; beyond it the oldest are dropped.
_MAX_EVENTS = 100


class OutputBuffer:
    """What one attempt produced since the last flush."""

    def __init__(
        self, subject: str, task_id: str, token: str, pump: "OutputPump", attempt: int = 0
    ) -> None:
        self.subject = subject
        self.task_id = task_id
        self.token = token
        self.attempt = attempt
        self._pump = pump
        self._text: list[str] = []
        self._chars = 0
        self._progress: tuple[float | None, str] | None = None
        self._events: list[str] = []
        self._seq = 0
        self._streamed = False
        self.closed = False
        # Held while a flush is taken and stored: the last flush (close) waits
        # for one in flight, so pieces are stored in sequence order and all
        # before the attempt's outcome is published.
        self.sending = asyncio.Lock()
        # The skill's context (its span) when tracing is on, else None.
        self.context: contextvars.Context | None = None

    def add_text(self, chunk: str) -> None:
        if self.closed or not chunk:
            return
        self._text.append(chunk)
        self._chars += len(chunk)
        self._streamed = True
        self.context = tracing.capture() or self.context
        self._pump.mark(self, eager=self._chars >= _EAGER_FLUSH_CHARS)

    def set_progress(self, fraction: float | None, note: str) -> None:
        if self.closed:
            return
        self._progress = (fraction, note)
        self.context = tracing.capture() or self.context
        self._pump.mark(self)

    def add_event(self, note: str) -> None:
        """A progress note every watcher should see (a tool started or ended),
        published in order, not replaced by the next one as `set_progress` is."""
        if self.closed:
            return
        self._events.append(note)
        del self._events[:-_MAX_EVENTS]
        self.context = tracing.capture() or self.context
        self._pump.mark(self)

    def take(self, final: bool) -> list[Message]:
        """The messages to publish now, in order (progress last: it is the newest)."""
        messages: list[Message] = []
        if self._text or (final and self._streamed):
            self._seq += 1
            messages.append(
                OutputChunk(
                    task_id=self.task_id,
                    token=self.token,
                    seq=self._seq,
                    text="".join(self._text),
                    final=final,
                    attempt=self.attempt,
                )
            )
            self._text.clear()
            self._chars = 0
        for note in self._events:
            self._seq += 1
            messages.append(
                Progress(
                    task_id=self.task_id,
                    token=self.token,
                    seq=self._seq,
                    note=note,
                    attempt=self.attempt,
                )
            )
        self._events.clear()
        if self._progress is not None:
            self._seq += 1
            fraction, note = self._progress
            messages.append(
                Progress(
                    task_id=self.task_id,
                    token=self.token,
                    seq=self._seq,
                    fraction=fraction,
                    note=note,
                    attempt=self.attempt,
                )
            )
            self._progress = None
        return messages


class OutputPump:
    """Publishes every marked buffer at most once per `flush_interval_s`."""

    def __init__(self, publish: Publish, flush_interval_s: float) -> None:
        self._publish = publish
        self._interval_s = flush_interval_s
        self._dirty: dict[int, OutputBuffer] = {}
        self._wake = asyncio.Event()
        self._eager = False

    def mark(self, buffer: OutputBuffer, *, eager: bool = False) -> None:
        self._dirty[id(buffer)] = buffer
        self._eager = self._eager or eager
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            if not self._eager:
                # The batching window: whatever else arrives meanwhile rides along.
                await asyncio.sleep(self._interval_s)
            self._wake.clear()
            self._eager = False
            dirty, self._dirty = self._dirty, {}
            # Attempts' flushes go out together: each is stored (and acked) in
            # order, but one attempt's ack does not hold up another's.
            await asyncio.gather(*(self._send(buffer, final=False) for buffer in dirty.values()))

    async def close(self, buffer: OutputBuffer) -> None:
        """Flush what is left of an ended attempt, marking its stream final."""
        self._dirty.pop(id(buffer), None)
        await self._send(buffer, final=True)
        buffer.closed = True

    async def _send(self, buffer: OutputBuffer, *, final: bool) -> None:
        async with buffer.sending:
            messages = buffer.take(final)
            if not messages:
                return
            if buffer.context is None:
                await self._publish_all(buffer, messages)
                return
            # A copy: one Context cannot be entered by two tasks at once.
            context = buffer.context.copy()
            await asyncio.create_task(self._publish_all(buffer, messages), context=context)

    async def _publish_all(self, buffer: OutputBuffer, messages: list[Message]) -> None:
        for message in messages:
            try:
                await self._publish(buffer.subject, message)
            except Exception as exc:  # watchers are best effort; the outcome is not
                log.debug("output of %s not published: %s", buffer.task_id, exc)
