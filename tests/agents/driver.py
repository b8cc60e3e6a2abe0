"""The test's stand-in for the supervisor: it watches announcements, sends
Assign/Cancel/Rollcall over the real bus and reads outcomes from RESULTS."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import msgspec
import nats.js.errors
from nats.js import api as js_api

from natsfleet.agents import AgentRuntime
from natsfleet.agents.agent import Agent, AgentConfig
from natsfleet.bus import Bus, BusConfig, Incoming
from natsfleet.protocols import (
    AgentAnnouncement,
    Assign,
    AssignReply,
    AttemptOutcome,
    Bye,
    Cancel,
    Codec,
    DeadLetter,
    ErrorReply,
    Heartbeat,
    Hello,
    Message,
    OutcomeBatch,
    ResultsMessage,
    Rollcall,
    Stream,
    new_task_id,
    new_token,
    to_raw,
)

T = TypeVar("T")

_ANNOUNCEMENT = Codec[AgentAnnouncement](AgentAnnouncement)
_REPLY = Codec[AssignReply](AssignReply)
_OUTCOME = Codec[ResultsMessage](ResultsMessage)
_DLQ = Codec[DeadLetter](DeadLetter)
_ROLLCALL = Codec[Rollcall](Rollcall)


class Driver:
    """Plays the supervisor's part of the contract, for tests."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.subjects = bus.subjects
        self.hellos: list[Hello] = []
        self.heartbeats: list[Heartbeat] = []
        self.byes: list[Bye] = []
        self.rollcalls: list[Rollcall] = []
        self.outcomes: list[AttemptOutcome] = []
        self.outcome_headers: dict[str, dict[str, str]] = {}
        self._changed = asyncio.Event()
        self._fetcher: asyncio.Task[None] | None = None
        self._psub: Any = None

    async def start(self, *, results: bool = True) -> "Driver":
        """Watch announcements and rollcalls; with `results`, also consume RESULTS
        (not while a real supervisor runs: a work-queue stream takes one consumer)."""
        await self.bus.subscribe(self.subjects.announcements(), _ANNOUNCEMENT, self._on_announce)
        await self.bus.subscribe(self.subjects.rollcall(), _ROLLCALL, self._on_rollcall)
        if not results:
            return self
        psub = await self.bus.js.pull_subscribe(
            self.subjects.results(),
            durable="test-driver",
            stream=self.subjects.stream(Stream.RESULTS),
            config=js_api.ConsumerConfig(ack_wait=5.0),
        )
        self._psub = psub
        self._fetcher = asyncio.create_task(self._fetch(psub))
        return self

    async def stop(self) -> None:
        if self._fetcher is not None:
            self._fetcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fetcher
        if self._psub is not None:
            # Not drained: a late reply to a cancelled fetch would keep a drain waiting.
            await self._psub.unsubscribe()

    async def _on_announce(self, message: AgentAnnouncement, _: Incoming) -> Message | None:
        match message:
            case Hello():
                self.hellos.append(message)
            case Heartbeat():
                self.heartbeats.append(message)
            case Bye():
                self.byes.append(message)
        self._changed.set()
        return None

    async def _on_rollcall(self, message: Rollcall, _: Incoming) -> Message | None:
        self.rollcalls.append(message)
        self._changed.set()
        return None

    async def supervisor_active(self, name: str, timeout_s: float = 15.0) -> Rollcall:
        """A supervisor starts each term with a Rollcall carrying its id."""
        return await self.wait_for(
            lambda: next((r for r in self.rollcalls if r.supervisor_id == name), None), timeout_s
        )

    async def _fetch(self, psub: Any) -> None:
        while True:
            try:
                msgs = await psub.fetch(16, timeout=0.5)
            except asyncio.CancelledError:
                raise
            except Exception:  # timeouts and a restarting server alike: ask again
                await asyncio.sleep(0.02)
                continue
            for msg in msgs:
                message = _OUTCOME.decode(msg.data)
                batch = message.outcomes if isinstance(message, OutcomeBatch) else (message,)
                for outcome in batch:
                    self.outcomes.append(outcome)
                    self.outcome_headers[outcome.token] = dict(msg.headers or {})
                await msg.ack()
            self._changed.set()

    async def wait_for(self, predicate: Callable[[], T | None], timeout_s: float = 10.0) -> T:
        """The first truthy value of `predicate()`, re-checked at every new message."""

        async def poll() -> T:
            while True:
                self._changed.clear()
                value = predicate()
                if value:
                    return value
                await self._changed.wait()

        return await asyncio.wait_for(poll(), timeout_s)

    async def hello(self, instance_id: str, timeout_s: float = 10.0) -> Hello:
        return await self.wait_for(
            lambda: next((h for h in self.hellos if h.instance_id == instance_id), None),
            timeout_s,
        )

    async def heartbeat(
        self, test: Callable[[Heartbeat], bool], timeout_s: float = 10.0
    ) -> Heartbeat:
        seen = len(self.heartbeats)
        return await self.wait_for(
            lambda: next((h for h in self.heartbeats[seen:] if test(h)), None), timeout_s
        )

    async def outcome(self, token: str, timeout_s: float = 10.0) -> AttemptOutcome:
        return await self.wait_for(
            lambda: next((o for o in self.outcomes if o.token == token), None), timeout_s
        )

    async def outcome_after(self, count: int, timeout_s: float = 10.0) -> AttemptOutcome:
        """The first outcome beyond the first `count` seen."""
        return await self.wait_for(
            lambda: self.outcomes[count] if len(self.outcomes) > count else None, timeout_s
        )

    async def assign(
        self,
        agent: str,
        instance_id: str,
        skill: str,
        input: Any,
        *,
        task_id: str | None = None,
        token: str | None = None,
        attempt: int = 1,
        remaining_ms: int | None = None,
    ) -> tuple[Assign, AssignReply]:
        assign = Assign(
            task_id=task_id or new_task_id(),
            token=token or new_token(),
            attempt=attempt,
            skill=skill,
            input=to_raw(input),
            remaining_ms=remaining_ms,
        )
        reply = await self.request_raw(self.subjects.assign(agent, instance_id), assign)
        return assign, reply

    async def request_raw(self, subject: str, message: Message | bytes) -> AssignReply:
        """Send an Assign (or raw bytes) and return the reply, ErrorReply included."""
        data = message if isinstance(message, bytes) else msgspec.json.encode(message)
        msg = await self.bus.nc.request(subject, data, timeout=5.0)
        reply = _REPLY.decode(msg.data)
        assert isinstance(reply, Message)
        return reply

    async def cancel(self, agent: str, instance_id: str, task_id: str, token: str) -> None:
        await self.bus.publish(
            self.subjects.cancel(agent, instance_id),
            Cancel(task_id=task_id, token=token, reason="test cancel"),
        )

    async def rollcall(self) -> None:
        await self.bus.publish(self.subjects.rollcall(), Rollcall(supervisor_id="test"))

    async def dead_letter(self, reason: str, timeout_s: float = 5.0) -> DeadLetter:
        """The newest DLQ entry with `reason`, once there is one: out of an
        AssignBatch the agent writes it beside its reply, not before it."""
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    msg = await self.bus.js.get_last_msg(
                        self.subjects.stream(Stream.DLQ), self.subjects.dlq(reason)
                    )
                except nats.js.errors.NotFoundError:
                    await asyncio.sleep(0.01)
                    continue
                assert msg.data is not None
                return _DLQ.decode(msg.data)


def error_reply(reply: AssignReply) -> ErrorReply:
    assert isinstance(reply, ErrorReply), reply
    return reply


@contextlib.asynccontextmanager
async def driver(url: str, prefix: str, *, results: bool = True) -> AsyncIterator[Driver]:
    """A provisioned fleet and a driver on it."""
    async with Bus(BusConfig(url=url, prefix=prefix), role="test", instance="driver") as bus:
        await bus.provision()
        test_driver = await Driver(bus).start(results=results)
        try:
            yield test_driver
        finally:
            await test_driver.stop()


@contextlib.asynccontextmanager
async def running(
    agent: Agent,
    url: str,
    prefix: str,
    *,
    instance_id: str | None = None,
    config: AgentConfig | None = None,
) -> AsyncIterator[AgentRuntime]:
    """An in-process instance of `agent`, drained at exit (the grace skipped)."""
    runtime = AgentRuntime(
        agent, bus_config=BusConfig(url=url, prefix=prefix), instance_id=instance_id, config=config
    )
    async with runtime:
        try:
            yield runtime
        finally:
            runtime.shutdown(immediate=True)
