"""Call a built-in agent's skill in-process with a real TaskContext and router."""

import asyncio
from typing import Any

from natsfleet.agents import Agent, TaskContext
from natsfleet.agents.attempt import Attempt
from natsfleet.agents.llm import Router, TaskLLM, config_from_mapping
from natsfleet.agents.output import OutputBuffer
from natsfleet.protocols import Assign, new_task_id, new_token, to_raw


class _Pump:
    def mark(self, buffer: OutputBuffer, eager: bool = False) -> None:
        return None


class _NoCalls:
    async def call(self, *args: Any) -> Any:
        raise AssertionError("built-in skills make no sub-task calls")


def offline_router() -> Router:
    return Router.from_config(config_from_mapping({}), env={})


class Called:
    """The outcome of one in-process skill call: output, the task's LLM, streamed text."""

    def __init__(self, output: Any, llm: TaskLLM, streamed: list[str]) -> None:
        self.output = output
        self.llm = llm
        self.streamed = streamed


async def call_skill(
    agent: Agent,
    skill: str,
    value: Any,
    router: Router,
    *,
    workflow_id: str | None = None,
    task_id: str | None = None,
    budget_usd: float | None = None,
) -> Called:
    definition = type(agent).skills()[skill]
    assign = Assign(
        task_id=task_id or new_task_id(),
        token=new_token(),
        attempt=1,
        skill=skill,
        input=to_raw(value),
        remaining_ms=30_000,
        workflow_id=workflow_id,
        budget_usd=budget_usd,
    )
    decoded = definition.decode_input(assign.input)
    attempt = Attempt(assign, definition, decoded, instance_id="test", agent=type(agent).name)
    buffer = OutputBuffer("out", assign.task_id, assign.token, _Pump())  # type: ignore[arg-type]
    streamed: list[str] = []

    async def sink(text: str) -> None:
        streamed.append(text)

    llm = router.bind(
        task_id=assign.task_id, remaining_s=30.0, budget_usd=budget_usd, on_chunk=sink
    )
    ctx = TaskContext(attempt, output=buffer, runner=_NoCalls(), logger=_logger(), llm=llm)
    output = await asyncio.wait_for(getattr(agent, definition.method)(decoded, ctx), 30)
    return Called(output, llm, streamed)


def _logger() -> Any:
    import logging

    return logging.getLogger("tests.builtin")
