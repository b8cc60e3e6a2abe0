"""Sending Assigns: one request per instance per event-loop turn (DESIGN.md section 8).

Under load many Assigns for the same instance become ready in the same turn
(a fetched batch of submissions whose records were stored by one round of
acks). They go out as one `AssignBatch` request, answered by one
`AssignBatchReply`, instead of a request and a reply each. A lone Assign, an
instance whose Hello does not say `assign_batch`, and every Assign while
tracing is on (each carries its own trace context in its headers) go alone,
exactly as before. Either way each caller gets its own Accept or Reject, or
the error its request would have raised.
"""

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from natsfleet.bus import Bus, tracing
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

_REPLY = Codec[AssignReply](AssignReply)
_BATCH_REPLY = Codec[AssignBatchAnswer](AssignBatchAnswer)


class BadBatchReply(NatsFleetError):
    """An `AssignBatchReply` that does not answer its batch one for one."""


_Waiting = list[tuple[Assign, "asyncio.Future[Accept | Reject]"]]


class Assigner:
    def __init__(
        self,
        bus: Bus,
        timeout_s: float,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self._bus = bus
        self._timeout_s = timeout_s
        self._spawn = spawn
        self._waiting: dict[str, tuple[Instance, _Waiting]] = {}
        self.batches_sent = 0
        self.batched_assigns = 0

    async def send(self, instance: Instance, assign: Assign) -> Accept | Reject:
        """The instance's answer; raises what `Bus.request` raises."""
        if not instance.hello.assign_batch or tracing.enabled():
            return await self._alone(instance, assign)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Accept | Reject] = loop.create_future()
        entry = self._waiting.get(instance.instance_id)
        if entry is None:
            entry = self._waiting[instance.instance_id] = (instance, [])
            # After the callbacks already ready in this turn: their Assigns join.
            loop.call_soon(self._flush, instance.instance_id)
        entry[1].append((assign, future))
        return await future

    async def _alone(self, instance: Instance, assign: Assign) -> Accept | Reject:
        subject = self._bus.subjects.assign(instance.agent, instance.instance_id)
        reply = await self._bus.request(subject, assign, _REPLY, timeout_s=self._timeout_s)
        if isinstance(reply, ErrorReply):  # pragma: no cover - Bus.request raises it
            raise RemoteError(reply.code, reply.detail, reply.retryable)
        return reply

    def _flush(self, instance_id: str) -> None:
        instance, waiting = self._waiting.pop(instance_id)
        send = (
            self._one(instance, *waiting[0]) if len(waiting) == 1 else self._many(instance, waiting)
        )
        try:
            self._spawn(send)
        except RuntimeError:  # the term ended this turn: its callers are gone too
            send.close()
            for _, future in waiting:
                future.cancel()

    async def _one(
        self, instance: Instance, assign: Assign, future: "asyncio.Future[Accept | Reject]"
    ) -> None:
        try:
            reply = await self._alone(instance, assign)
        except Exception as exc:
            _settle(future, exc)
        else:
            _settle(future, reply)

    async def _many(self, instance: Instance, waiting: _Waiting) -> None:
        subject = self._bus.subjects.assign(instance.agent, instance.instance_id)
        batch = AssignBatch(assigns=tuple(assign for assign, _ in waiting))
        self.batches_sent += 1
        self.batched_assigns += len(waiting)
        try:
            answer = await self._bus.request(
                subject, batch, _BATCH_REPLY, timeout_s=self._timeout_s
            )
            replies = answer.replies if isinstance(answer, AssignBatchReply) else ()
            if len(replies) != len(waiting) or any(
                reply.token != assign.token
                for reply, (assign, _) in zip(replies, waiting, strict=True)
            ):
                raise BadBatchReply(
                    f"{instance.instance_id} answered {len(replies)} of {len(waiting)} assigns"
                    " or out of order"
                )
        except Exception as exc:
            for _, future in waiting:
                _settle(future, exc)
            return
        for reply, (_, future) in zip(replies, waiting, strict=True):
            _settle(future, reply)


def _settle(
    future: "asyncio.Future[Accept | Reject]", outcome: Accept | Reject | Exception
) -> None:
    if future.done():  # the caller's term ended meanwhile
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
