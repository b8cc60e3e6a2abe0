"""One accepted attempt: its state, and running its skill to exactly one outcome."""

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from natsfleet.agents.errors import AwaitingApproval, describe_exception
from natsfleet.agents.skill import SkillDef
from natsfleet.protocols import Assign, AttemptOutcome, Failure, FailureKind, Result, to_raw

if TYPE_CHECKING:
    from natsfleet.agents.agent import Agent
    from natsfleet.agents.context import TaskContext

log = logging.getLogger(__name__)


class Attempt:
    """An accepted `Assign`, from `Accept` until its outcome is acknowledged.

    `deadline` is in event-loop time (`loop.time()`), the earlier of the
    task's remaining time and the attempt's start-to-close, both counted from
    receipt.
    """

    def __init__(
        self, assign: Assign, skill: SkillDef, value: Any, *, instance_id: str, agent: str
    ) -> None:
        loop = asyncio.get_running_loop()
        self.assign = assign
        self.task_id = assign.task_id
        self.token = assign.token
        self.number = assign.attempt
        self.skill = skill
        self.value = value
        self.instance_id = instance_id
        self.agent = agent
        self.received = loop.time()
        self._started_wall = time.perf_counter()
        limits = [ms for ms in (assign.remaining_ms, assign.start_to_close_ms) if ms is not None]
        self.deadline: float | None = self.received + min(limits) / 1000 if limits else None
        self.progress: float | None = None
        self.note = ""
        self.holds_slot = True
        self.calls = 0
        # Sub-tasks this attempt waits for right now (the slot is given up meanwhile).
        self.waiting = 0
        # Loops run so far (`ctx.loop`), numbering each loop's journal entries.
        self.loops = 0
        self.cancelled = asyncio.Event()
        self.cancel_kind: FailureKind | None = None
        self.cancel_detail = ""
        self.ended = False
        # The task running the skill while it runs, and whether our cancel()
        # of it is still to be accounted for (`run`).
        self._task: asyncio.Task[Any] | None = None
        self._cancel_sent = False

    @property
    def msg_id(self) -> str:
        return f"{self.task_id}:{self.token}"

    def stop_requested(self) -> bool:
        """A Cancel or a hand-back asked this attempt to stop."""
        return self.cancel_kind is not None

    def request_cancel(self, kind: FailureKind, detail: str) -> None:
        """Stop the skill (CancelledError at its next await). The first reason wins."""
        if self.cancel_kind is not None or self.ended:
            return
        self.cancel_kind = kind
        self.cancel_detail = detail
        self.cancelled.set()
        if self._task is not None and self._task is not asyncio.current_task():
            self._cancel_sent = True
            self._task.cancel()

    def duration_ms(self) -> float:
        return (time.perf_counter() - self._started_wall) * 1000

    def failure(
        self, kind: FailureKind, error_type: str, detail: str, *, retryable: bool
    ) -> Failure:
        return Failure(
            task_id=self.task_id,
            token=self.token,
            attempt=self.number,
            instance_id=self.instance_id,
            agent=self.agent,
            kind=kind,
            error_type=error_type,
            detail=detail,
            retryable=retryable,
            duration_ms=self.duration_ms(),
        )

    def stopped_failure(self) -> Failure:
        """The outcome of an attempt stopped by Cancel or by a hand-back."""
        kind = self.cancel_kind or FailureKind.CANCELED
        handed_back = kind == FailureKind.HANDED_BACK
        return self.failure(
            kind,
            "HandedBack" if handed_back else "Canceled",
            self.cancel_detail,
            retryable=handed_back,
        )

    async def run(self, agent: "Agent", ctx: "TaskContext") -> AttemptOutcome:
        """Run the skill to its outcome.

        The skill runs inline in the caller's task (a child task and its
        TaskGroup cost an agent ~17 µs per attempt, a quarter of its CPU under
        load). A Cancel or hand-back cancels this task; that one cancellation
        is taken back here (`uncancel`) and reported as the outcome. Every
        suspension between setting `_task` and clearing it is inside the
        `try`, so our cancellation can only land there.

        Any other cancellation of this task that escapes the skill (the
        runtime stopping, or a skill cancelling its own task) is raised: the
        caller still reports an outcome for it (`cancelled_failure`). One the
        skill swallows does not stop it: whatever it returns is reported.
        """
        if self.stop_requested():
            return self.stopped_failure()
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        try:
            outcome = await self._invoke(agent, ctx)
        except asyncio.CancelledError:
            ours = self._cancel_sent
            self._cancel_sent = False
            if ours and task.uncancel() == 0:
                return self.stopped_failure()
            if task.cancelling() > 0:
                raise  # cancelled by someone else (as well)
            # Nobody cancelled this task: the skill let a CancelledError of its
            # own escape (e.g. from a future it cancelled).
            return self.failure(
                FailureKind.ERROR, "CancelledError", "cancelled from inside", retryable=True
            )
        finally:
            self._task = None
        if self._cancel_sent:  # the skill swallowed our cancellation
            self._cancel_sent = False
            task.uncancel()
        if self.stop_requested():
            return self.stopped_failure()
        return outcome

    def cancelled_failure(self) -> Failure:
        """The outcome of an attempt whose task was cancelled (see `run`)."""
        if self.stop_requested():
            return self.stopped_failure()
        return self.failure(
            FailureKind.ERROR, "CancelledError", "attempt cancelled", retryable=True
        )

    async def _invoke(self, agent: "Agent", ctx: "TaskContext") -> AttemptOutcome:
        method = getattr(agent, self.skill.method)
        scope = asyncio.timeout_at(self.deadline)
        try:
            async with scope:
                value = await method(self.value, ctx)
            output = to_raw(value)
        except TimeoutError as exc:
            if scope.expired():
                return self.failure(
                    FailureKind.TIMEOUT,
                    "DeadlineExceeded",
                    "attempt deadline passed",
                    retryable=True,
                )
            return self._error(exc)
        except Exception as exc:
            return self._error(exc)
        return Result(
            task_id=self.task_id,
            token=self.token,
            attempt=self.number,
            instance_id=self.instance_id,
            agent=self.agent,
            output=output,
            duration_ms=self.duration_ms(),
        )

    def _error(self, exc: Exception) -> Failure:
        if isinstance(exc, AwaitingApproval):
            log.info(
                "task %s attempt %d waits for approval of %s",
                self.task_id,
                self.number,
                exc.pending_call.tool,
                extra={"task_id": self.task_id, "token": self.token},
            )
            paused = self.failure(
                FailureKind.AWAITING_APPROVAL, "AwaitingApproval", str(exc), retryable=True
            )
            return msgspec.structs.replace(paused, pending_call=exc.pending_call)
        error_type, detail, retryable = describe_exception(exc)
        log.info(
            "task %s attempt %d failed: %s: %s",
            self.task_id,
            self.number,
            error_type,
            detail,
            extra={"task_id": self.task_id, "token": self.token},
        )
        return self.failure(FailureKind.ERROR, error_type, detail, retryable=retryable)
