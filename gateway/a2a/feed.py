"""A task's A2A event stream, read from the fleet's streams by whichever replica serves it.

A stream is a snapshot, then what happened after it:

- the snapshot is the task as its latest event in EVENTS and the OUTPUT
  stream so far show it (`Snapshot`), with the sequence of each it ends at;
- then the task's events after that EVENTS sequence (a status update each
  time its A2A state changes), its output after that OUTPUT sequence
  (`TaskArtifactUpdateEvent`s appended to the `output` artifact, progress as
  `working` status updates), and at the end the result artifact and the final
  status. A stream stops at a final state or at `input-required`.

Nothing of this lives in the gateway: a replica killed mid-stream loses no
event, and a client resubscribing through another replica gets the snapshot
(everything so far) and then each later item once.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from a2a.server.events import Event
from a2a.types import Message, Role, TaskArtifactUpdateEvent, TaskStatusUpdateEvent
from nats.js import errors as js_errors

from natsfleet.bus import boundary
from natsfleet.client import FleetClient, OutputItem
from natsfleet.client.output import deliver_after
from natsfleet.gateway.a2a.mapping import (
    OUTPUT_ARTIFACT,
    STATES,
    output_artifact,
    prompt_of,
    result_artifact,
    status_of,
    text_part,
)
from natsfleet.protocols import (
    BLOB_HEADER,
    Codec,
    NatsFleetError,
    OutputChunk,
    Progress,
    Stream,
    TaskEvent,
    TaskOutput,
    is_terminal,
)
from natsfleet.protocols import TaskState as FleetState

log = logging.getLogger(__name__)

_EVENT = Codec[TaskEvent](TaskEvent)
_OUTPUT = Codec[TaskOutput](TaskOutput)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Where a task stands, and the stream sequences that state was read at."""

    event: TaskEvent | None
    events_seq: int
    text: str
    output_seq: int


async def last_event(client: FleetClient, task_id: str) -> tuple[TaskEvent | None, int]:
    """The task's latest event and its EVENTS sequence; (None, 0) before its first."""
    bus = client.bus
    try:
        raw = await bus.js.get_last_msg(
            bus.subjects.stream(Stream.EVENTS), bus.subjects.events(task_id)
        )
    except js_errors.NotFoundError:
        return None, 0
    if BLOB_HEADER in (raw.headers or {}):  # an event never is that large; not ours to read
        return None, raw.seq or 0
    return _EVENT.decode(raw.data or b""), raw.seq or 0


async def snapshot(client: FleetClient, task_id: str) -> Snapshot:
    """The task's latest event and the text it has streamed so far."""
    event, events_seq = await last_event(client, task_id)
    text, output_seq = await streamed_so_far(client, task_id)
    return Snapshot(event=event, events_seq=events_seq, text=text, output_seq=output_seq)


async def streamed_so_far(client: FleetClient, task_id: str) -> tuple[str, int]:
    """The text the task streamed up to now, and the OUTPUT sequence it ends at.

    "Now" is when the consumer is made: what it had delivered plus what it
    still had pending then is read, no more (`follow` would instead wait for
    the task's end), and never a poll's wait when there is nothing.
    """
    bus = client.bus
    try:  # most tasks stream nothing: one lookup tells, without a consumer
        await bus.js.get_last_msg(
            bus.subjects.stream(Stream.OUTPUT), bus.subjects.task_output(task_id)
        )
    except js_errors.NotFoundError:
        return "", 0
    sub = await bus.js.subscribe(
        bus.subjects.task_output(task_id),
        stream=bus.subjects.stream(Stream.OUTPUT),
        ordered_consumer=True,
    )
    texts: list[str] = []
    last_seq = 0
    try:
        info = await sub.consumer_info()
        delivered = info.delivered.consumer_seq if info.delivered else 0
        for _ in range((delivered or 0) + (info.num_pending or 0)):
            msg = await sub.next_msg(timeout=5.0)
            last_seq = msg.metadata.sequence.stream
            try:
                item, _ = await boundary.decode(bus, msg, _OUTPUT, bus.config.max_message_bytes)
            except NatsFleetError as exc:  # skipped, never fatal to a reader
                log.warning("unreadable output of %s at %d: %s", task_id, last_seq, exc)
                continue
            if isinstance(item, OutputChunk):
                texts.append(item.text)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return "".join(texts), last_seq


async def events_after(
    client: FleetClient, task_id: str, after_seq: int
) -> AsyncGenerator[TaskEvent, None]:
    """The task's events after EVENTS sequence `after_seq`, live, never ending by itself."""
    bus = client.bus
    sub = await bus.js.subscribe(
        bus.subjects.events(task_id),
        stream=bus.subjects.stream(Stream.EVENTS),
        ordered_consumer=True,
        config=deliver_after(after_seq),
    )
    try:
        async for msg in sub.messages:
            try:
                event, _ = await boundary.decode(bus, msg, _EVENT, bus.config.max_message_bytes)
            except NatsFleetError as exc:  # skipped, never fatal to a reader
                log.warning("unreadable event of %s: %s", task_id, exc)
                continue
            yield event
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


class _OutputEnd:
    """The output stream of the task has ended (the task ended and all of it was read)."""


_END = _OutputEnd()


class Feed:
    """The A2A events of one task after a snapshot (see the module doc)."""

    def __init__(self, client: FleetClient, task_id: str, context_id: str) -> None:
        self.client = client
        self.task_id = task_id
        self.context_id = context_id

    async def events(
        self, state: FleetState, events_seq: int, output_seq: int, streamed_text: bool
    ) -> AsyncIterator[Event]:
        """What follows a snapshot in `state` read at those sequences."""
        queue: asyncio.Queue[TaskEvent | OutputItem | _OutputEnd] = asyncio.Queue()

        async def pump_events() -> None:
            events = events_after(self.client, self.task_id, events_seq)
            async with contextlib.aclosing(events):  # its consumer goes when we stop
                async for event in events:
                    await queue.put(event)
                    if is_terminal(event.state):
                        return

        async def pump_output() -> None:
            async for item in self.client.output_stream(self.task_id, after_seq=output_seq):
                await queue.put(item)
            await queue.put(_END)

        pumps: list[asyncio.Future[None]] = [
            asyncio.ensure_future(pump_events()),
            asyncio.ensure_future(pump_output()),
        ]
        try:
            async for event in self._merge(queue, pumps, state, streamed_text):
                yield event
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def _merge(
        self,
        queue: "asyncio.Queue[TaskEvent | OutputItem | _OutputEnd]",
        pumps: list["asyncio.Future[None]"],
        state: FleetState,
        streamed_text: bool,
    ) -> AsyncIterator[Event]:
        shown = STATES[state]
        final: TaskEvent | None = None
        output_done = False
        while not (final is not None and output_done):
            item = await self._next(queue, pumps)
            if isinstance(item, _OutputEnd):
                output_done = True
            elif isinstance(item, OutputItem):
                yield self._output(item, append=streamed_text)
                streamed_text = streamed_text or isinstance(item.message, OutputChunk)
            elif is_terminal(item.state):
                final = item  # sent after the last of the output
            elif item.state == FleetState.INPUT_REQUIRED:
                # A2A: an interrupted task's stream ends, saying what it asks;
                # a message with the task's id resumes it.
                try:
                    prompt = prompt_of(await self.client.status_reply(self.task_id))
                except NatsFleetError as exc:  # the state still goes out, without the prompt
                    log.warning("the prompt of %s could not be read: %s", self.task_id, exc)
                    prompt = ""
                yield self._status(item, prompt)
                return
            elif STATES[item.state] != shown:
                shown = STATES[item.state]
                yield self._status(item)
        assert final is not None
        if final.state == FleetState.COMPLETED and bytes(final.output) not in (b"", b"null"):
            yield TaskArtifactUpdateEvent(
                task_id=self.task_id,
                context_id=self.context_id,
                artifact=result_artifact(final.output),
                last_chunk=True,
            )
        elif final.state == FleetState.COMPLETED and final.output_ref is not None:
            output = await self.client.bus.payloads.resolve(final.output, final.output_ref)
            yield TaskArtifactUpdateEvent(
                task_id=self.task_id,
                context_id=self.context_id,
                artifact=result_artifact(output),
                last_chunk=True,
            )
        yield self._status(final)

    @staticmethod
    async def _next(
        queue: "asyncio.Queue[TaskEvent | OutputItem | _OutputEnd]",
        pumps: list["asyncio.Future[None]"],
    ) -> "TaskEvent | OutputItem | _OutputEnd":
        """The next item; a pump's error (the connection lost for good) is raised,
        whenever it happened."""
        getter: asyncio.Future[TaskEvent | OutputItem | _OutputEnd] = asyncio.ensure_future(
            queue.get()
        )
        try:
            while True:
                for pump in pumps:
                    error = pump.exception() if pump.done() else None
                    if error is not None:
                        raise error
                waiting: list[asyncio.Future[Any]] = [getter, *(p for p in pumps if not p.done())]
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    return getter.result()
        finally:
            getter.cancel()

    def _status(self, event: TaskEvent, detail: str = "") -> TaskStatusUpdateEvent:
        status = status_of(
            event.state,
            self.task_id,
            self.context_id,
            detail=detail or event.detail,
            error=event.error,
        )
        return TaskStatusUpdateEvent(
            task_id=self.task_id, context_id=self.context_id, status=status
        )

    def _output(self, item: OutputItem, *, append: bool) -> Event:
        message = item.message
        if isinstance(message, Progress):
            status = status_of(FleetState.WORKING, self.task_id, self.context_id)
            note = Message(
                message_id=f"{self.task_id}-p{item.seq}",
                role=Role.ROLE_AGENT,
                task_id=self.task_id,
                context_id=self.context_id,
                parts=[text_part(message.note)],
            )
            status.message.CopyFrom(note)
            update = TaskStatusUpdateEvent(
                task_id=self.task_id, context_id=self.context_id, status=status
            )
            progress: dict[str, float] = {"seq": item.seq, "attempt": message.attempt}
            if message.fraction is not None:
                progress["fraction"] = message.fraction
            update.metadata.update({"progress": progress})
            return update
        artifact = output_artifact(message.text, item.seq)
        artifact.artifact_id = OUTPUT_ARTIFACT
        update_event = TaskArtifactUpdateEvent(
            task_id=self.task_id, context_id=self.context_id, artifact=artifact, append=append
        )
        update_event.metadata.update({"seq": item.seq, "attempt": message.attempt})
        return update_event
