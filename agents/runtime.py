"""AgentRuntime: one agent instance on the bus, from hello to bye.

The contract with the supervisor is docs/architecture.md ("Agent <->
supervisor contract"); the numbers in comments below refer to its items.
"""

import asyncio
import contextvars
import logging
import os
import secrets
from typing import TYPE_CHECKING, Any

from natsfleet.agents import payload_io, telemetry
from natsfleet.agents._presence import Presence
from natsfleet.agents._slots import Slots
from natsfleet.agents._subtasks import SubtaskCaller
from natsfleet.agents.agent import Agent, AgentConfig
from natsfleet.agents.attempt import Attempt
from natsfleet.agents.context import TaskContext
from natsfleet.agents.errors import AgentError
from natsfleet.agents.llm_binding import LLMBinding, with_usage
from natsfleet.agents.outbox import Outbox
from natsfleet.agents.output import OutputBuffer, OutputPump
from natsfleet.agents.skill import SkillDef
from natsfleet.bus import Bus, BusConfig, Incoming
from natsfleet.client import FleetClient
from natsfleet.process.loop import wait_event
from natsfleet.protocols import (
    ID_MAX_CHARS,
    Accept,
    AgentInbox,
    Assign,
    AssignBatch,
    AssignBatchReply,
    Cancel,
    Codec,
    DlqReason,
    FailureKind,
    Message,
    OutputChunk,
    Progress,
    ProtocolError,
    Reject,
    RejectCode,
    Result,
    Rollcall,
    check_struct,
    check_token,
    encode,
    new_incarnation,
)
from natsfleet.telemetry.logs import task_scope

if TYPE_CHECKING:
    from natsfleet.agents.loop.host import LoopHost
    from natsfleet.agents.mcp.servers import MCPServers

log = logging.getLogger(__name__)

_INBOX = Codec[AgentInbox](AgentInbox)
_ROLLCALL = Codec[Rollcall](Rollcall)

# After a hand-back, how long a skill may take to notice its CancelledError
# before its hand-back is reported without it.
_HANDBACK_WAIT_S = 1.0


def default_instance_id(agent_name: str) -> str:
    """`<agent>-<6 hex digits>`: unique enough per fleet, readable in listings
    (the name cut so the whole stays an id, protocols/limits.py)."""
    return f"{agent_name[: ID_MAX_CHARS - 7]}-{secrets.token_hex(3)}"


class AgentRuntime:
    """Runs one instance of `agent` until `shutdown()` (SIGTERM, SIGINT) drains it.

    ```python
    runtime = AgentRuntime(MyAgent(), bus_config=BusConfig.from_env())
    await runtime.run()      # returns after the drain; call runtime.shutdown() to start it

    async with AgentRuntime(MyAgent()) as runtime:   # or: serving inside the block,
        ...                                          # drained at its end
    ```
    """

    def __init__(
        self,
        agent: Agent,
        *,
        bus_config: BusConfig | None = None,
        instance_id: str | None = None,
        config: AgentConfig | None = None,
        llm: LLMBinding | None = None,
    ) -> None:
        self.agent = agent
        #: The process's LLM router, bound per attempt into `ctx.llm`.
        self.llm = llm or LLMBinding()
        self.name = type(agent).name
        self.config = config or type(agent).config
        if os.environ.get("NATSFLEET_AGENT_LABEL"):  # its fleet-file entry has MCP servers
            from natsfleet.agents.mcp.fleetfile import with_fleet_file_servers

            self.config = with_fleet_file_servers(self.config)
        self.skills: dict[str, SkillDef] = type(agent).skills()
        self.instance_id = check_token(instance_id or default_instance_id(self.name), "instance id")
        self.incarnation = new_incarnation()
        # Role `agent.<type>`: the reply inbox `_INBOX.<prefix>.agent.<type>.<inst>`
        # lets a per-type NATS user be confined to its own (deploy/permissions.py).
        self.bus = Bus(bus_config, role=f"agent.{self.name}", instance=self.instance_id)
        self.subjects = self.bus.subjects
        self.presence = Presence(
            agent=self.name,
            agent_version=type(agent).version,
            instance_id=self.instance_id,
            incarnation=self.incarnation,
            skills=type(agent).skill_specs(),
            config=self.config,
        )
        # Whatever the supervisor would refuse to decode (protocols/limits.py: a
        # version over 256 characters, a capacity out of range) stops us here,
        # not as an instance that says hello and is never seen.
        check_struct(self.presence.hello(), "hello")
        #: Set once the instance has said hello and takes assignments.
        self.ready = asyncio.Event()
        self.slots = Slots(self.config.capacity)
        self.attempts: dict[str, Attempt] = {}
        self.outbox = Outbox(
            self.bus, self.subjects.result(self.name, self.instance_id), self._on_acked
        )
        self._pump = OutputPump(self._publish_output, self.config.output_flush_s)
        self._subtasks = SubtaskCaller(FleetClient(self.bus), self.slots)
        self._loop_host: LoopHost | None = None
        self._mcp: MCPServers | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._attempt_tasks: set[asyncio.Task[None]] = set()
        # Work a reply must not wait for (dead letters out of an AssignBatch).
        self._background: set[asyncio.Task[Any]] = set()
        # A skill's `ctx.log` is named after the agent's own module, not ours.
        self._skill_log = logging.getLogger(type(agent).__module__)
        self._stop = asyncio.Event()
        self._attempt_ended = asyncio.Event()
        self._draining = False
        self._skip_grace = False
        self._runner: asyncio.Future[None] | None = None

    def _loop(self) -> "LoopHost":
        """The agent loop's host, built (and its package imported) on first use:
        most agents never run a loop, and start-up time matters (a restart is one)."""
        if self._loop_host is None:
            from natsfleet.agents.loop.host import LoopHost

            self._loop_host = LoopHost(self.bus, self._subtasks, self.config.sessions)
        return self._loop_host

    def _mcp_servers(self) -> "MCPServers":
        """The agent's MCP servers, built on first use (an agent that uses none
        never imports the package, nor the `mcp` SDK); stopped after the drain."""
        if self._mcp is None:
            from natsfleet.agents.mcp.servers import MCPServers

            self._mcp = MCPServers(self.config.mcp_servers)
        return self._mcp

    # -- lifecycle ----------------------------------------------------------------

    @property
    def draining(self) -> bool:
        """True once `shutdown()` was called."""
        return self._stop.is_set()

    def shutdown(self, *, immediate: bool = False) -> None:
        """Start draining (idempotent). `immediate` skips the grace period."""
        self._skip_grace = self._skip_grace or immediate
        if not self._stop.is_set():
            log.info("instance %s draining", self.instance_id)
        self._stop.set()

    async def run(self) -> None:
        """Connect, announce, serve until `shutdown()`, drain, say bye, disconnect.

        Without NATS at start it keeps trying (start order need not matter)
        until connected or shut down. Raises `ConnectionLost` if the connection
        is closed for good (the instance can no longer work), `Unreachable` if
        nats-py gave up connecting (`BusConfig.max_reconnect_attempts`).
        """
        if not await self._connect():
            log.info("instance %s stopped before NATS was reachable", self.instance_id)
            return
        try:
            await self.llm.open(self.bus)
            await self.agent.setup()
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                loops = [
                    # Raises ConnectionLost, which ends the group, if NATS is gone for good.
                    tasks.create_task(self.bus.until_lost(), name="nats"),
                    tasks.create_task(self.outbox.run(), name="outbox"),
                    tasks.create_task(self._pump.run(), name="output"),
                ]
                await self._subscribe()
                await self.bus.publish(
                    self.subjects.hello(self.name, self.instance_id), self.presence.hello()
                )
                loops.append(tasks.create_task(self._heartbeats(), name="heartbeat"))
                self.ready.set()
                log.info(
                    "instance %s of %s serving %s (capacity %d)",
                    self.instance_id,
                    self.name,
                    ", ".join(self.skills),
                    self.config.capacity,
                )
                await self._stop.wait()
                await self._drain()
                for loop_task in loops:
                    loop_task.cancel()
                for attempt_task in self._attempt_tasks:
                    attempt_task.cancel()  # only skills that ignored their hand-back
        except Exception as exc:
            lost = self.bus.lost
            if lost is None:
                raise
            # Whatever failed with it (the group's other errors included), this is why.
            raise lost from exc
        finally:
            self._tasks = None
            if self._mcp is not None:  # after the drain: no attempt uses them now
                await self._mcp.aclose()
            await self.bus.close()
            await self.agent.teardown()
            await self.llm.aclose()

    async def __aenter__(self) -> "AgentRuntime":
        """Run in the background until the block ends; returns once serving."""
        self._runner = asyncio.ensure_future(self.run())
        ready = asyncio.ensure_future(self.ready.wait())
        await asyncio.wait({self._runner, ready}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._runner.done():
            self._runner.result()  # raises why it could not start
            raise AgentError(f"instance {self.instance_id} stopped before serving")
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Drain (as SIGTERM would) and wait until the instance has left."""
        self.shutdown()
        if self._runner is not None:
            await self._runner

    async def _connect(self) -> bool:
        """Connect unless `shutdown()` comes first; False if it did."""
        return await self.bus.connect_unless(self._stop)

    async def _subscribe(self) -> None:
        s = self.subjects
        await self.bus.subscribe(s.assign(self.name, self.instance_id), _INBOX, self._on_inbox)
        await self.bus.subscribe(s.cancel(self.name, self.instance_id), _INBOX, self._on_inbox)
        await self.bus.subscribe(s.rollcall(), _ROLLCALL, self._on_rollcall)
        # The subscriptions must be in place at the server before hello (item 1).
        await self.bus.nc.flush()

    # -- heartbeats ---------------------------------------------------------------

    async def _heartbeats(self) -> None:
        while True:
            await self._heartbeat()
            await asyncio.sleep(self.config.heartbeat_interval_s)

    async def _heartbeat(self) -> None:
        for token in self.presence.recent.prune():
            self.outbox.forget(token)
        if not self.bus.is_connected:
            return  # a heartbeat buffered while away would arrive stale
        beat = self.presence.heartbeat(
            self.attempts.values(), load=self.slots.used, draining=self._draining
        )
        await self._publish_quietly(self.subjects.heartbeat(self.name, self.instance_id), beat)

    async def _publish_output(self, subject: str, message: Message) -> None:
        """Into the OUTPUT stream, de-duplicated by attempt and sequence, so a
        flush repeated after a lost ack is stored once; one retry, then the pump
        logs it (a watcher misses that piece; the outcome is not affected)."""
        assert isinstance(message, OutputChunk | Progress)
        msg_id = f"{message.task_id}:{message.token}:{message.seq}"
        for last in (False, True):
            try:
                await self.bus.publish_js(subject, message, msg_id=msg_id)
                return
            except Exception:
                if last:
                    raise
                await asyncio.sleep(0.05)

    async def _publish_quietly(self, subject: str, message: Message) -> None:
        try:
            await self.bus.publish(subject, message)
        except Exception as exc:  # the next heartbeat will do
            log.debug("publish on %s failed: %s", subject, exc)

    async def _on_rollcall(self, _: Rollcall, __: Incoming) -> Message | None:
        await self.bus.publish(
            self.subjects.hello(self.name, self.instance_id), self.presence.hello()
        )
        return None

    # -- assignments (items 3 and 6) -----------------------------------------------

    async def _on_inbox(self, message: AgentInbox, incoming: Incoming) -> Message | None:
        match message:
            case Assign():
                return await self._on_assign(message, incoming)
            case AssignBatch():
                replies = [await self._on_assign(a, incoming, alone=False) for a in message.assigns]
                return AssignBatchReply(replies=tuple(replies))
            case Cancel():
                self._on_cancel(message)
                return None

    def _reject(self, assign: Assign, code: RejectCode, detail: str) -> Reject:
        log.info("rejected task %s (%s): %s", assign.task_id, code.value, detail)
        return Reject(
            task_id=assign.task_id,
            token=assign.token,
            instance_id=self.instance_id,
            code=code,
            detail=detail,
        )

    async def _on_assign(
        self, assign: Assign, incoming: Incoming, *, alone: bool = True
    ) -> Accept | Reject:
        accept = Accept(task_id=assign.task_id, token=assign.token, instance_id=self.instance_id)
        if assign.token in self.attempts or assign.token in self.presence.recent:
            return accept  # a repeated Assign: answered again, never run twice
        if self._draining:
            return self._reject(assign, RejectCode.DRAINING, "instance is draining")
        definition = self.skills.get(assign.skill)
        if definition is None:
            detail = f"no skill {assign.skill!r}; this agent offers {', '.join(self.skills)}"
            await self._dead_letter(DlqReason.UNKNOWN_SKILL, assign, incoming, detail, alone)
            return self._reject(assign, RejectCode.UNKNOWN_SKILL, detail)
        try:
            # An input kept in BLOBS is read after the Accept (`_read_input`):
            # a big one takes longer than the supervisor waits for an answer.
            value = None if assign.input_ref else definition.decode_input(assign.input)
        except ProtocolError as err:
            await self._dead_letter(DlqReason.BAD_INPUT, assign, incoming, err.detail, alone)
            return self._reject(assign, RejectCode.BAD_INPUT, err.detail)
        if self._tasks is None or not self.slots.try_take():
            used = f"{self.slots.used}/{self.slots.capacity} slots in use"
            return self._reject(assign, RejectCode.AT_CAPACITY, used)
        attempt = Attempt(assign, definition, value, instance_id=self.instance_id, agent=self.name)
        self.attempts[attempt.token] = attempt
        task = self._tasks.create_task(self._run_attempt(attempt), name=f"attempt {attempt.msg_id}")
        self._attempt_tasks.add(task)
        task.add_done_callback(self._attempt_tasks.discard)
        return accept

    async def _dead_letter(
        self, reason: DlqReason, assign: Assign, incoming: Incoming, detail: str, alone: bool
    ) -> None:
        write = self.bus.dead_letter(
            reason,
            subject=incoming.subject,
            error=detail,
            headers=incoming.headers,
            # Out of a batch, the one Assign at fault, not the whole request.
            payload=incoming.data if alone else encode(assign),
            task_id=assign.task_id,
        )
        if alone:
            await write
            return
        # Out of a batch the reply must not wait for the DLQ's ack (one slow
        # write would time out every Assign in it): it is written meanwhile.
        task = asyncio.create_task(write)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: "asyncio.Task[Any]") -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("dead letter not written: %s", task.exception())

    def _on_cancel(self, cancel: Cancel) -> None:
        attempt = self.attempts.get(cancel.token)
        if attempt is None or attempt.task_id != cancel.task_id:
            log.debug("cancel for unknown token %s of %s ignored", cancel.token, cancel.task_id)
            return
        log.info("task %s canceled: %s", cancel.task_id, cancel.reason or "no reason given")
        attempt.request_cancel(FailureKind.CANCELED, cancel.reason or "canceled")

    # -- running an attempt (item 4) --------------------------------------------------

    async def _run_attempt(self, attempt: Attempt) -> None:
        buffer = self._pump_buffer(attempt)
        # An agent that set its own `self.llm` in setup() keeps it; otherwise
        # each attempt gets the process's router bound to this attempt (on
        # first use of ctx.llm).
        own_llm = self.agent.llm is None
        ctx = TaskContext(
            attempt,
            output=buffer,
            runner=self._subtasks,
            logger=self._skill_log,
            llm=self.agent.llm,
            bind_llm=(lambda: self.llm.bind(attempt, buffer)) if own_llm else None,
            tools=self.agent.tools,
            loop_host=self._loop,
            mcp=self._mcp_servers,
        )
        try:
            with (
                telemetry.invoke_agent(self.name, self.instance_id, attempt) as span,
                task_scope(task_id=attempt.task_id, attempt=attempt.number),
            ):
                ctx.span = span
                try:
                    subject = self.subjects.assign(self.name, self.instance_id)
                    refused = await payload_io.read_input(self.bus, attempt, subject)
                    outcome = refused or await attempt.run(self.agent, ctx)
                except asyncio.CancelledError:
                    # The runtime stopping, or a skill that cancelled its own
                    # task: the attempt still leaves with an outcome (if the
                    # drain put one already, the outbox keeps that first one).
                    self.outbox.put(attempt.cancelled_failure())
                    raise
                telemetry.record_outcome(span, outcome)
                # Captured here so the outcome's publish joins the task's trace.
                outcome_context = contextvars.copy_context()
            llm = ctx.bound_llm() if own_llm else None
            if llm is not None:
                outcome = with_usage(outcome, llm)
        finally:
            attempt.ended = True
            if attempt.holds_slot:
                attempt.holds_slot = False
                self.slots.give_back()
            self._attempt_ended.set()
        await self._pump.close(buffer)
        if isinstance(outcome, Result):
            outcome = await payload_io.offloaded(self.bus, attempt, outcome)
        # The token stays in the heartbeat's in_flight until the stream has it.
        self.outbox.put(outcome, outcome_context)

    def _pump_buffer(self, attempt: Attempt) -> OutputBuffer:
        subject = self.subjects.output(self.name, self.instance_id, attempt.task_id)
        return OutputBuffer(
            subject, attempt.task_id, attempt.token, self._pump, attempt.assign.attempt
        )

    def _on_acked(self, token: str) -> None:
        self.attempts.pop(token, None)
        self.presence.recent.add(token)

    # -- shutdown (item 8) ------------------------------------------------------------

    def _running(self) -> list[Attempt]:
        return [a for a in self.attempts.values() if not a.ended]

    async def _wait_running(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        while self._running() and (left_s := until - loop.time()) > 0:
            self._attempt_ended.clear()
            if not await wait_event(self._attempt_ended, left_s):
                break

    async def _drain(self) -> None:
        self._draining = True
        await self._heartbeat()  # tell the supervisor at once: no new work here
        if not self._skip_grace:
            await self._wait_running(self.config.drain_grace_s)
        for attempt in self._running():
            attempt.request_cancel(FailureKind.HANDED_BACK, "instance shutting down")
        await self._wait_running(_HANDBACK_WAIT_S)
        for attempt in self._running():
            # It ignores its CancelledError: report the hand-back without it.
            log.warning("task %s did not stop; handed back anyway", attempt.task_id)
            self.outbox.put(attempt.stopped_failure())
        if not await self.outbox.wait_empty(self.config.shutdown_flush_s):
            log.error(
                "leaving with %d outcomes not stored (tokens %s); their tasks will time out",
                len(self.outbox),
                ", ".join(self.outbox.pending_tokens()),
            )
        await self._publish_quietly(
            self.subjects.bye(self.name, self.instance_id), self.presence.bye("drained")
        )
        log.info("instance %s left the fleet", self.instance_id)
