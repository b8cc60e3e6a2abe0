"""Sending Assigns: one request per instance per event-loop turn (docs/architecture.md, "Hot path").

Under load many Assigns for the same instance become ready in the same turn
(a fetched batch of submissions whose records were stored by one round of
acks). They go out as one `AssignBatch` request, answered by one
`AssignBatchReply`, instead of a request and a reply each. A lone Assign, an
instance whose Hello does not say `assign_batch`, and every Assign while
tracing is on (each carries its own trace context in its headers) go alone,
exactly as before. The first caller of a turn leads: it yields once, so the
callbacks already ready in that turn add theirs, then sends for all of them.
Either way each caller gets its own Accept or Reject, or the error its
request would have raised.
"""

import asyncio

from natsfleet.bus import Bus
from natsfleet.protocols import (
    Accept,
    Assign,
    AssignBatch,
    AssignBatchAnswer,
    AssignBatchReply,
    AssignReply,
    Codec,
    ErrorReply,
    NatsFleetError,
    Reject,
    RemoteError,
)
from natsfleet.supervisor.registry import Instance
from natsfleet.telemetry import tracing

_REPLY = Codec[AssignReply](AssignReply)
_BATCH_REPLY = Codec[AssignBatchAnswer](AssignBatchAnswer)


class BadBatchReply(NatsFleetError):
    """An `AssignBatchReply` that does not answer its batch one for one."""


_Waiting = list[tuple[Assign, "asyncio.Future[Accept | Reject]"]]


class Assigner:
    def __init__(self, bus: Bus, timeout_s: float) -> None:
        self._bus = bus
        self._timeout_s = timeout_s
        self._waiting: dict[str, tuple[Instance, _Waiting]] = {}
        self.batches_sent = 0
        self.batched_assigns = 0

    async def send(self, instance: Instance, assign: Assign) -> Accept | Reject:
        """The instance's answer; raises what `Bus.request` raises."""
        if not instance.hello.assign_batch or tracing.enabled():
            return await self._alone(instance, assign)
        joining = self._waiting.get(instance.instance_id)
        if joining is not None:  # a batch for this instance is being gathered
            future: asyncio.Future[Accept | Reject] = asyncio.get_running_loop().create_future()
            joining[1].append((assign, future))
            return await future
        # The first this turn leads: it waits one turn for the Assigns of the
        # callbacks already ready (they join above), then sends for everyone.
        waiting: _Waiting = []
        self._waiting[instance.instance_id] = (instance, waiting)
        try:
            await asyncio.sleep(0)
        finally:
            del self._waiting[instance.instance_id]
        if not waiting:
            return await self._alone(instance, assign)
        try:
            replies = await self._many(instance, [assign, *(a for a, _ in waiting)])
        except BaseException as exc:
            for _, joined in waiting:
                if isinstance(exc, Exception):
                    _settle(joined, exc)
                elif not joined.done():
                    joined.cancel()  # the leader's term ended: so did theirs
            raise
        for reply, (_, joined) in zip(replies[1:], waiting, strict=True):
            _settle(joined, reply)
        return replies[0]

    async def _alone(self, instance: Instance, assign: Assign) -> Accept | Reject:
        subject = self._bus.subjects.assign(instance.agent, instance.instance_id)
        reply = await self._bus.request(subject, assign, _REPLY, timeout_s=self._timeout_s)
        if isinstance(reply, ErrorReply):  # pragma: no cover - Bus.request raises it
            raise RemoteError(reply.code, reply.detail, reply.retryable)
        return reply

    async def _many(self, instance: Instance, assigns: list[Assign]) -> list[Accept | Reject]:
        subject = self._bus.subjects.assign(instance.agent, instance.instance_id)
        self.batches_sent += 1
        self.batched_assigns += len(assigns)
        answer = await self._bus.request(
            subject, AssignBatch(assigns=tuple(assigns)), _BATCH_REPLY, timeout_s=self._timeout_s
        )
        replies = list(answer.replies) if isinstance(answer, AssignBatchReply) else []
        if [reply.token for reply in replies] != [assign.token for assign in assigns]:
            raise BadBatchReply(
                f"{instance.instance_id} answered {len(replies)} of {len(assigns)} assigns"
                " or out of order"
            )
        return replies


def _settle(
    future: "asyncio.Future[Accept | Reject]", outcome: Accept | Reject | Exception
) -> None:
    if future.done():  # the caller's term ended meanwhile
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
