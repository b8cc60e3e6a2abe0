"""`ctx.call`: a sub-task submitted through the supervisor, awaited without a slot."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import msgspec

from natsfleet.agents._slots import Slots
from natsfleet.agents.attempt import Attempt
from natsfleet.agents.errors import SubtaskFailed
from natsfleet.client import FleetClient
from natsfleet.protocols import AgentInfo, TaskState, Timeouts, decode_raw

log = logging.getLogger(__name__)

T = TypeVar("T")


class SubtaskCaller:
    """Submits children with the key `<parent id>/<call index>` and waits for them."""

    def __init__(self, client: FleetClient, slots: Slots) -> None:
        self._client = client
        self._slots = slots

    async def call(
        self,
        attempt: Attempt,
        skill: str,
        input: Any,
        output_type: type[T],
        timeout_s: float | None,
    ) -> T:
        index = attempt.calls
        attempt.calls += 1
        raw = await self.call_keyed(attempt, skill, input, f"{attempt.task_id}/{index}", timeout_s)
        return decode_raw(raw, output_type)

    async def call_keyed(
        self,
        attempt: Attempt,
        skill: str,
        input: Any,
        key: str,
        timeout_s: float | None,
    ) -> msgspec.Raw:
        """Run `skill` as a child with idempotency key `key`; its raw output.

        Several may wait at once (the agent loop's tool calls of one turn):
        the slot is given up by the first and taken back by the last.
        """
        remaining_s = _remaining_s(attempt)
        child_id = await self._client.submit(
            skill,
            input,
            key=key,
            parent_id=attempt.task_id,
            workflow_id=attempt.assign.workflow_id,
            tenant=attempt.assign.tenant,  # a child counts against its parent's tenant
            # A child cannot usefully outlive the attempt waiting for it.
            timeouts=Timeouts(schedule_to_close_s=remaining_s) if remaining_s else None,
        )
        log.debug("task %s called %s as %s", attempt.task_id, skill, child_id)
        waits = [s for s in (timeout_s, remaining_s) if s is not None]
        # Waiting for a child holds no slot, or a fleet of parents deadlocks.
        attempt.waiting += 1
        self._release(attempt)
        try:
            event = await self._client.wait(child_id, min(waits) if waits else None)
        except BaseException:
            attempt.waiting -= 1  # no slot is awaited while an attempt is being cancelled
            raise
        attempt.waiting -= 1
        if attempt.waiting == 0:
            await self._slots.take_back()
            attempt.holds_slot = True
        if event.state != TaskState.COMPLETED or event.output is None:
            detail = event.error.detail if event.error else event.detail
            raise SubtaskFailed(child_id, skill, event.state.value, detail)
        return event.output

    async def agents(self, timeout_s: float | None = None) -> tuple[AgentInfo, ...]:
        """Every instance the supervisor knows, with its skills (the registry's Hellos)."""
        return await self._client.agents(timeout_s=timeout_s)

    @contextlib.asynccontextmanager
    async def without_slot(self, attempt: Attempt) -> AsyncIterator[None]:
        """Wait for something else (a session another task holds) without a
        slot, as for a child: taken back on leaving, unless cancelled."""
        attempt.waiting += 1
        self._release(attempt)
        try:
            yield
        except asyncio.CancelledError:
            attempt.waiting -= 1  # the attempt is ending: no slot is awaited
            raise
        except BaseException:
            await self._back(attempt)  # a skill that catches the error runs with a slot
            raise
        await self._back(attempt)

    async def _back(self, attempt: Attempt) -> None:
        attempt.waiting -= 1
        if attempt.waiting == 0:
            await self._slots.take_back()
            attempt.holds_slot = True

    def _release(self, attempt: Attempt) -> None:
        if attempt.holds_slot:
            attempt.holds_slot = False
            self._slots.give_back()


def _remaining_s(attempt: Attempt) -> float | None:
    if attempt.deadline is None:
        return None
    return max(0.001, attempt.deadline - asyncio.get_running_loop().time())
