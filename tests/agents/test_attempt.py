"""Attempt.run: the skill runs inline; a Cancel stops it and is reported; any
other cancellation of the attempt's task propagates, and the runtime still
reports an outcome for it."""

import asyncio
import contextlib
from typing import Any

import msgspec
import pytest

from natsfleet.agents import TaskContext, skill
from natsfleet.agents.attempt import Attempt
from natsfleet.agents.skill import SkillDef
from natsfleet.process import NatsServer
from natsfleet.protocols import Assign, Failure, FailureKind, Result
from tests.agents.driver import driver, running
from tests.fleet_agents import EchoAgent, Text


class Skills:
    """Skills with the behaviours the tests need; `started` is set once running."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.after_cancel = ""

    async def waits(self, _: Any, __: Any) -> str:
        self.started.set()
        await asyncio.sleep(30)
        return "finished"

    async def swallows(self, _: Any, __: Any) -> str:
        self.started.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(30)
        await asyncio.sleep(0)  # still runs after swallowing it
        return "ignored the cancel"

    async def raises_own(self, _: Any, __: Any) -> str:
        self.started.set()
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        future.cancel()
        return await future  # a CancelledError nobody asked for

    async def quick(self, _: Any, __: Any) -> str:
        return "done"

    async def slow(self, _: Any, __: Any) -> str:
        await asyncio.sleep(30)
        return "late"


def _attempt(method: str, *, start_to_close_ms: int | None = None) -> Attempt:
    skill = SkillDef(
        name=method,
        version="1",
        description="",
        method=method,
        input_type=Any,
        output_type=Any,
        decoder=msgspec.json.Decoder(),
    )
    assign = Assign(
        task_id="t1",
        token="tok",
        attempt=1,
        skill=method,
        input=msgspec.Raw(b"{}"),
        start_to_close_ms=start_to_close_ms,
    )
    return Attempt(assign, skill, {}, instance_id="i1", agent="a")


async def _run_then_sleep(attempt: Attempt, skills: Skills) -> tuple[Any, float]:
    """The runtime's shape: after the outcome the same task goes on awaiting."""
    outcome = await attempt.run(skills, None)  # type: ignore[arg-type]
    await asyncio.sleep(0.01)  # our cancellation must not land here
    task = asyncio.current_task()
    assert task is not None
    return outcome, task.cancelling()


async def test_a_result_comes_back_from_the_same_task() -> None:
    outcome = await _attempt("quick").run(Skills(), None)  # type: ignore[arg-type]
    assert isinstance(outcome, Result)
    assert msgspec.json.decode(outcome.output) == "done"


@pytest.mark.parametrize("method", ["waits", "swallows"])
async def test_a_cancel_stops_the_skill_and_is_reported_not_raised(method: str) -> None:
    skills, attempt = Skills(), _attempt(method)
    task = asyncio.create_task(_run_then_sleep(attempt, skills))
    await skills.started.wait()
    attempt.request_cancel(FailureKind.CANCELED, "user asked")
    outcome, cancelling = await asyncio.wait_for(task, 2)
    assert isinstance(outcome, Failure)
    assert (outcome.kind, outcome.detail) == (FailureKind.CANCELED, "user asked")
    assert cancelling == 0


async def test_a_hand_back_is_reported_as_such() -> None:
    skills, attempt = Skills(), _attempt("waits")
    task = asyncio.create_task(_run_then_sleep(attempt, skills))
    await skills.started.wait()
    attempt.request_cancel(FailureKind.HANDED_BACK, "instance shutting down")
    outcome, _ = await asyncio.wait_for(task, 2)
    assert outcome.kind == FailureKind.HANDED_BACK and outcome.retryable


async def test_cancelling_the_attempt_task_still_cancels_it() -> None:
    skills, attempt = Skills(), _attempt("waits")
    task = asyncio.create_task(_run_then_sleep(attempt, skills))
    await skills.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    assert attempt.cancelled_failure().error_type == "CancelledError"


async def test_a_cancellation_the_skill_swallows_does_not_lose_its_result() -> None:
    # Inline, a skill's own watchdog (cancel yourself later, fall back when it
    # fires) and an outside cancel look alike; either way the skill decided.
    skills, attempt = Skills(), _attempt("swallows")
    task = asyncio.create_task(_run_then_sleep(attempt, skills))
    await skills.started.wait()
    task.cancel()
    outcome, _ = await asyncio.wait_for(task, 2)
    assert isinstance(outcome, Result)
    assert msgspec.json.decode(outcome.output) == "ignored the cancel"


async def test_an_outside_cancel_together_with_ours_still_cancels() -> None:
    skills, attempt = Skills(), _attempt("waits")
    task = asyncio.create_task(_run_then_sleep(attempt, skills))
    await skills.started.wait()
    attempt.request_cancel(FailureKind.CANCELED, "user asked")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)


async def test_a_cancelled_error_of_the_skills_own_is_an_error_outcome() -> None:
    skills, attempt = Skills(), _attempt("raises_own")
    outcome, cancelling = await _run_then_sleep(attempt, skills)
    assert isinstance(outcome, Failure)
    assert (outcome.kind, outcome.error_type) == (FailureKind.ERROR, "CancelledError")
    assert cancelling == 0


async def test_the_attempt_deadline_is_a_timeout_outcome() -> None:
    attempt = _attempt("slow", start_to_close_ms=50)
    outcome, cancelling = await _run_then_sleep(attempt, Skills())
    assert isinstance(outcome, Failure)
    assert (outcome.kind, outcome.error_type) == (FailureKind.TIMEOUT, "DeadlineExceeded")
    assert cancelling == 0


async def test_a_cancel_after_the_outcome_changes_nothing() -> None:
    attempt = _attempt("quick")
    outcome, _ = await _run_then_sleep(attempt, Skills())
    attempt.request_cancel(FailureKind.CANCELED, "too late")
    assert isinstance(outcome, Result)


class Watchdog(EchoAgent):
    """Skills that cancel their own task, the pre-3.11 way to time out."""

    name = "watchdog"

    @skill
    async def falls_back(self, input: Text, ctx: TaskContext) -> Text:
        me = asyncio.current_task()
        assert me is not None
        handle = asyncio.get_running_loop().call_later(0.05, me.cancel)
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return Text(text="fallback")
        finally:
            handle.cancel()
        return input

    @skill
    async def gives_up(self, input: Text, ctx: TaskContext) -> Text:
        me = asyncio.current_task()
        assert me is not None
        asyncio.get_running_loop().call_later(0.05, me.cancel)
        await asyncio.sleep(10)
        return input

    @skill
    async def replaces_llm(self, input: Text, ctx: TaskContext) -> Text:
        ctx.llm = "a stand-in without .usage"  # a test double, a wrapper
        return input


@pytest.mark.parametrize(
    ("skill_name", "expected"), [("falls_back", Result), ("gives_up", Failure)]
)
async def test_a_skill_that_cancels_its_own_task_still_reports_an_outcome(
    nats_server: NatsServer, prefix: str, skill_name: str, expected: type
) -> None:
    async with (
        driver(nats_server.url, prefix) as d,
        running(Watchdog(), nats_server.url, prefix, instance_id="w1"),
    ):
        await d.hello("w1")
        assign, _ = await d.assign("watchdog", "w1", skill_name, Text(text="x"))
        outcome = await asyncio.wait_for(d.outcome(assign.token), 3)
        assert isinstance(outcome, expected)
        if isinstance(outcome, Result):
            assert msgspec.json.decode(outcome.output) == {"text": "fallback"}
        else:
            assert (outcome.kind, outcome.error_type) == (FailureKind.ERROR, "CancelledError")


async def test_a_skill_that_assigns_ctx_llm_still_reports_its_result(
    nats_server: NatsServer, prefix: str
) -> None:
    async with (
        driver(nats_server.url, prefix) as d,
        running(Watchdog(), nats_server.url, prefix, instance_id="w2"),
    ):
        await d.hello("w2")
        assign, _ = await d.assign("watchdog", "w2", "replaces_llm", Text(text="x"))
        assert isinstance(await asyncio.wait_for(d.outcome(assign.token), 3), Result)
