"""Find a submission still waiting in TASKS (not yet admitted), by task id.

A cancel can arrive before the supervisor has read the task's Submit; the
task then exists only as a message in TASKS. The backlog there is bounded by
the stream's maximum and is usually tiny, so a scan (capped) is cheap.
"""

from nats.js import errors as js_errors

from natsfleet.bus import Bus
from natsfleet.protocols import Codec, ProtocolError, Stream, Submit

#: Past this many waiting submissions, give up looking (answer unknown_task).
MAX_SCAN = 10_000

_SUBMIT = Codec[Submit](Submit)


async def pending_submit(bus: Bus, task_id: str) -> Submit | None:
    stream = bus.subjects.stream(Stream.TASKS)
    info = await bus.js.stream_info(stream)
    if info.state.messages == 0 or info.state.messages > MAX_SCAN:
        return None
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await bus.js.get_msg(stream, seq)
        except js_errors.NotFoundError:
            continue  # admitted (acked) meanwhile
        try:
            submit = _SUBMIT.decode(msg.data or b"")
        except ProtocolError:
            continue
        if submit.task_id == task_id:
            return submit
    return None
