"""Per-term durable consumers on TASKS and RESULTS: the fence against late acks.

A supervisor that passed its lease check and was then stopped (SIGSTOP, a
long GC pause) can still land one write when it resumes, e.g. create a new
task record, and then acknowledge that Submit. If the new leader had already
loaded STATE, and the ack removed the Submit from TASKS, the task would never
be scheduled. So each term consumes through its own durables, named with its
epoch (`supervisor-p<N>-tasks-e<E>`), and a new term, *before it loads
STATE*, deletes every older consumer of its partition and creates its own:

- an ack names its consumer in the reply subject, so an ack sent on a deleted
  (or another term's) consumer does nothing: the message stays in the stream
  and the new term's consumer delivers it; a create that landed after the
  load then conflicts at admission and the record is adopted (`recovery`);
- TASKS and RESULTS are work-queue streams, which allow one consumer per
  subject: once the new term's consumer exists, no older one can be created
  again (a deposed process's consume loop retrying its durable is refused).

In a work-queue stream an acknowledged message is removed, so the messages
left are exactly the unacknowledged ones: the new consumer starts at the
beginning of the stream (the previous term's ack floor + 1, and anything it
acked above the floor is already gone). That is also how an existing
deployment upgrades from the un-epoched durables (`supervisor-p<N>-tasks`).
"""

import logging
import re

from nats.js import api as js_api
from nats.js import errors as js_errors

from natsfleet.bus import Bus
from natsfleet.supervisor.errors import NotLeader
from natsfleet.supervisor.lease import Lease

log = logging.getLogger(__name__)

# JSConsumerWQMultipleUnfilteredErr, JSConsumerWQConsumerNotUniqueErr: an
# older consumer came back between our delete and our create.
_NOT_UNIQUE = (10099, 10100)
_ATTEMPTS = 20


def durable_name(partition: int, kind: str, epoch: int) -> str:
    return f"supervisor-p{partition}-{kind}-e{epoch}"


def _epoch_of(name: str, partition: int, kind: str) -> int | None:
    """0 for the un-epoched durable of older versions, E for `-e<E>`, None if not ours."""
    match = re.fullmatch(rf"supervisor-p{partition}-{kind}(?:-e(\d+))?", name)
    if match is None:
        return None
    return int(match.group(1) or 0)


async def fence(
    bus: Bus,
    lease: Lease,
    *,
    stream: str,
    subject: str,
    kind: str,
    batch: int,
    ack_wait_s: float,
) -> str:
    """Delete the partition's older consumers on `stream`, create this term's; its name.

    Raises:
        NotLeader: a consumer of a newer epoch exists, or the lease lapsed.
    """
    partition, epoch = lease.partition, lease.epoch
    name = durable_name(partition, kind, epoch)
    config = js_api.ConsumerConfig(
        name=name,
        durable_name=name,
        filter_subject=subject,
        deliver_policy=js_api.DeliverPolicy.ALL,
        ack_policy=js_api.AckPolicy.EXPLICIT,
        ack_wait=ack_wait_s,
        max_ack_pending=batch * 8,  # as `Bus.consume` would create it
    )
    for _ in range(_ATTEMPTS):
        lease.check()
        for info in await bus.js.consumers_info(stream):
            other = info.name
            term = _epoch_of(other, partition, kind)
            if term is None or other == name:
                continue
            if term > epoch:
                raise NotLeader(partition, f"consumer {other} belongs to a newer term")
            log.info("deleting consumer %s of an earlier term", other)
            try:
                await bus.js.delete_consumer(stream, other)
            except js_errors.NotFoundError:
                pass
        try:
            await bus.js.add_consumer(stream, config)
            return name
        except js_errors.BadRequestError as exc:
            if exc.err_code not in _NOT_UNIQUE:
                raise
            log.info("consumer %s: an earlier term's consumer is back; deleting again", name)
    raise RuntimeError(f"could not create consumer {name} on {stream}")
