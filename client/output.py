"""Following a task's output stream: from its start, or on from where a reader left.

Agents publish their batched partial output and progress into the OUTPUT
stream (subjects `out.<type>.<instance>.<task>`), so a watcher can attach at
any time and gets everything the stream still holds, in order; a reassigned
task's next attempt writes under the same task and its items carry the new
`attempt` number. Each item comes with its stream sequence: a reader that was
cut off passes the last one it handled as `after_seq` and gets the rest, each
once. Within one connection nats-py's ordered consumer already resumes by
itself after a reconnect.

The stream of a task ends when the task has ended and every item stored for
it has been handed out (the consumer has nothing pending and the reader has
seen the last sequence it delivered).
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nats.js import api as js_api

from natsfleet.bus import boundary
from natsfleet.protocols import (
    Codec,
    NatsFleetError,
    OutputChunk,
    Progress,
    ProtocolError,
    Stream,
    TaskOutput,
    check_id,
)

if TYPE_CHECKING:
    from natsfleet.bus import Bus

log = logging.getLogger(__name__)

_OUTPUT = Codec[TaskOutput](TaskOutput)
# How often a reader whose task has ended checks whether anything is left.
_POLL_S = 0.25


@dataclass(frozen=True, slots=True)
class OutputItem:
    """One piece of a task's output stream."""

    #: Its OUTPUT stream sequence: pass it as `after_seq` to resume after it.
    seq: int
    message: OutputChunk | Progress

    @property
    def attempt(self) -> int:
        return self.message.attempt


def deliver_after(after_seq: int) -> js_api.ConsumerConfig:
    """A consumer that starts after stream sequence `after_seq` (0: at the start):
    how a reader resumes where a cut one stopped, nothing lost or repeated."""
    if not after_seq:
        return js_api.ConsumerConfig(deliver_policy=js_api.DeliverPolicy.ALL)
    return js_api.ConsumerConfig(
        deliver_policy=js_api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_seq + 1
    )


async def follow(
    bus: "Bus",
    task_id: str,
    ended: Callable[[], Awaitable[object]],
    *,
    after_seq: int = 0,
    ready: asyncio.Event | None = None,
) -> AsyncIterator[OutputItem]:
    """The output of `task_id` from after `after_seq` (0: from its start) until
    `ended()` (waiting for the task's terminal event) returns and nothing of it is left to read."""
    check_id(task_id, "task id")  # it becomes a subject token
    if after_seq < 0:
        raise ValueError(f"after_seq must be 0 or more, not {after_seq}")
    subjects = bus.subjects
    sub = await bus.js.subscribe(
        subjects.task_output(task_id),
        stream=subjects.stream(Stream.OUTPUT),
        ordered_consumer=True,
        config=deliver_after(after_seq),
    )
    if ready is not None:
        ready.set()
    done = asyncio.ensure_future(ended())
    last_seq = after_seq
    last_delivery = 0
    try:
        while True:
            if done.done() and await _drained(sub, last_delivery):
                done.result()  # the waiter's error, if it failed
                return
            try:
                msg = await sub.next_msg(timeout=_POLL_S)
            except TimeoutError:
                continue
            last_seq = msg.metadata.sequence.stream
            last_delivery = msg.metadata.sequence.consumer
            try:
                message, _ = await boundary.decode(bus, msg, _OUTPUT, bus.config.max_message_bytes)
            except (ProtocolError, NatsFleetError) as exc:  # skipped, never fatal to a reader
                log.warning("unreadable output of %s at %d: %s", task_id, last_seq, exc)
                continue
            yield OutputItem(seq=last_seq, message=message)
    finally:
        done.cancel()
        await asyncio.gather(done, return_exceptions=True)
        try:
            await sub.unsubscribe()
        except Exception as exc:  # the connection may be gone: nothing to release
            log.debug("unsubscribing the output of %s: %s", task_id, exc)


async def _drained(sub: object, last_delivery: int) -> bool:
    """Whether the consumer has nothing left for us: none pending on the server
    and the last one it delivered is the last one we read.

    Compared by consumer sequence (deliveries to us), not stream sequence: a
    filtered consumer's delivered stream sequence moves past other tasks'
    output it skipped, so a task with no output of its own would never end.
    """
    info = await sub.consumer_info()  # type: ignore[attr-defined]
    return bool(info.num_pending == 0 and info.delivered.consumer_seq <= last_delivery)
