"""The supervisor process: standby until it holds its partition's lease, then active.

`run()` owns everything in one TaskGroup per term. A term ends when the lease
is lost (the renewal failed by compare-and-set, or could not be made for 2/3
of the ttl, or any write found a newer epoch), or on `shutdown()`: the term's
tasks are cancelled, unacknowledged messages go back to the streams, and on
shutdown the lease is released so a standby takes over at once.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

from natsfleet.bus import Bus, BusConfig, Incoming
from natsfleet.process.loop import wait_event
from natsfleet.protocols import (
    AgentAnnouncement,
    Bucket,
    Bye,
    Codec,
    DlqReason,
    Heartbeat,
    Hello,
    Message,
    OutcomeBatch,
    ResultsMessage,
    Stream,
    Submit,
    encode,
)
from natsfleet.supervisor.config import SupervisorConfig, default_supervisor_id
from natsfleet.supervisor.consumers import fence
from natsfleet.supervisor.control import RAW, Control
from natsfleet.supervisor.deadlines import Deadlines
from natsfleet.supervisor.engine import Engine, WorkflowHook
from natsfleet.supervisor.errors import NotLeader
from natsfleet.supervisor.hooks import Late
from natsfleet.supervisor.lease import Lease
from natsfleet.supervisor.metrics import SupervisorMetrics
from natsfleet.supervisor.recovery import take_over
from natsfleet.supervisor.registry import ListenerRelay, Registry, persist_every_s
from natsfleet.supervisor.store import TaskStore
from natsfleet.supervisor.workflows import WorkflowDef
from natsfleet.supervisor.workflows import load as load_workflows
from natsfleet.supervisor.workflows.runner import WorkflowRunner
from natsfleet.supervisor.workflows.runstore import RunStore

log = logging.getLogger(__name__)

_ANNOUNCEMENT = Codec[AgentAnnouncement](AgentAnnouncement)
_SUBMIT = Codec[Submit](Submit)
_OUTCOME = Codec[ResultsMessage](ResultsMessage)


async def _outcomes(engine: Engine, message: ResultsMessage, subject: str) -> None:
    """One outcome, or each of a batch (all handled; the first error, if any, is raised
    so the message comes back, and the outcomes already recorded are then no-ops).
    Each is bound to the instance its attempt was assigned to by `subject`."""
    if not isinstance(message, OutcomeBatch):
        await engine.outcome(message, subject)
        return
    done = await asyncio.gather(
        *(engine.outcome(o, subject) for o in message.outcomes), return_exceptions=True
    )
    for result in done:
        if isinstance(result, BaseException):
            raise result


class _Deposed(Exception):
    """Ends a term from inside its TaskGroup."""


class Supervisor:
    """One supervisor process for one partition.

    Use `await Supervisor(cfg, bus_config).run()`; `shutdown()` (or SIGTERM
    via the CLI) stops it, releasing the lease. `active` is set while it acts.
    Workflows come from `cfg.workflows` and `workflows`; they are validated
    here, so a bad definition raises `WorkflowDefinitionError` before anything runs.
    """

    def __init__(
        self,
        cfg: SupervisorConfig,
        bus_config: BusConfig | None = None,
        *,
        workflows: Iterable[WorkflowDef] = (),
    ) -> None:
        self.cfg = cfg
        self.catalog = load_workflows(cfg.workflows)
        for definition in workflows:
            self.catalog.add(definition, source="python")
        self.id = cfg.supervisor_id or default_supervisor_id()
        self.bus = Bus(bus_config, role="supervisor", instance=self.id)
        subjects = self.bus.subjects
        # The subject each announcement must arrive on (`_on_announcement`).
        self._announced_on = {
            Hello: subjects.hello,
            Heartbeat: subjects.heartbeat,
            Bye: subjects.bye,
        }
        # Built once for the process; each term's engine listens while it acts.
        self._fleet_news = ListenerRelay()
        self.registry = Registry(cfg.heartbeat_timeout_s, self._fleet_news)
        self.metrics = SupervisorMetrics(self.registry, lambda: self._engine)
        self.active = asyncio.Event()
        self.terms = 0
        self._stop = asyncio.Event()
        self._lease: Lease | None = None
        self._engine: Engine | None = None
        self._persisted: dict[str, float] = {}

    @property
    def engine(self) -> Engine | None:
        return self._engine

    def shutdown(self) -> None:
        """Stop acting, release the lease, close. Idempotent; `run()` returns."""
        self._stop.set()

    async def run(self) -> None:
        """Wait for NATS (unless `shutdown()` comes first), then serve until
        `shutdown()`. Raises `ConnectionLost` if the connection is closed for
        good, `Unreachable` if nats-py gave up connecting at start."""
        if not await self.bus.connect_unless(self._stop):
            log.info("supervisor %s stopped before NATS was reachable", self.id)
            return
        try:
            # A connection closed for good cancels everything: no zombie.
            await self.bus.guard(self._serve())
        finally:
            if self._lease is not None:
                with contextlib.suppress(Exception):
                    await self._lease.release()
            await self.bus.close()
            log.info("supervisor %s stopped", self.id)

    async def _serve(self) -> None:
        await self.bus.provision(self.cfg.storage)
        for subject in self.bus.subjects.announcement_subjects():
            await self.bus.subscribe(subject, _ANNOUNCEMENT, self._on_announcement)
        self._lease = Lease(
            await self.bus.kv(Bucket.LEASES),
            key=self.cfg.lease_key,
            partition=self.cfg.partition,
            holder=self.id,
            ttl_s=self.cfg.lease_ttl_s,
        )
        await self._elect(self._lease)

    async def _elect(self, lease: Lease) -> None:
        poll_s = min(self.cfg.lease_ttl_s / 4, 0.5)
        standby_since = time.monotonic()
        while not self._stop.is_set():
            try:
                acquired = await lease.try_acquire()
            except Exception as exc:  # NATS down: keep trying, as standby
                log.warning("lease check failed: %s", exc)
                acquired = False
            if acquired:
                warm = time.monotonic() - standby_since >= self.cfg.registry_warmup_s
                await self._term(lease, warm=warm)
                standby_since = time.monotonic()
                # Not straight back in: after a failed term, give NATS (or a
                # standby) a moment.
                await wait_event(self._stop, poll_s)
                continue
            await wait_event(self._stop, poll_s)

    async def _term(self, lease: Lease, *, warm: bool) -> None:
        self.terms += 1
        log.info("supervisor %s active (epoch %d)", self.id, lease.epoch)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._keep_lease(lease))
                tg.create_task(self._watch_stop())
                await self._start_term(tg, lease, warm=warm)
        except* (_Deposed, NotLeader) as group:
            log.warning("supervisor %s stops acting: %s", self.id, group.exceptions[0])
        except* Exception as group:
            # A bug or an error NATS did not recover from must not end the
            # process: stop acting, stand by, and take part in the next election.
            log.error(
                "supervisor %s term failed, standing by: %r",
                self.id,
                group.exceptions[0],
                exc_info=group.exceptions[0],
            )
        finally:
            self.active.clear()
            self._fleet_news.stop()
            self._engine = None
            lease.drop()

    async def _start_term(self, tg: asyncio.TaskGroup, lease: Lease, *, warm: bool) -> None:
        """Build the term's objects in dependency order, each whole through its
        constructor (docs/supervisor.md, "A term, built whole"), then start them."""
        bus, cfg = self.bus, self.cfg
        kv = await bus.kv(Bucket.STATE)
        ttl_enabled = bool((await kv.status()).stream_info.config.allow_msg_ttl)
        deadlines = Deadlines()
        store = TaskStore(
            bus, kv, lease, retention_s=cfg.retention_s, ttl_enabled=ttl_enabled,
            on_write=deadlines.arm,
        )  # fmt: skip
        # The runner needs the engine: the engine takes its hook to bind later.
        workflows = Late[WorkflowHook]("the engine's workflow runner")
        engine = Engine(
            cfg, bus, store, self.registry, tg, deadlines, metrics=self.metrics,
            workflows=workflows,
        )  # fmt: skip
        self._engine = engine
        # Fence the previous terms' consumers before STATE is loaded (consumers.py).
        results = await self._fence(lease, Stream.RESULTS, bus.subjects.results(), "results")
        tasks = await self._fence(lease, Stream.TASKS, bus.subjects.submit(), "tasks")
        await take_over(engine)
        runner = WorkflowRunner(
            engine, self.catalog, RunStore(await bus.kv(Bucket.WORKFLOWS), lease)
        )
        workflows.bind(runner)
        await runner.resume()
        tg.create_task(runner.run())
        control = Control(engine, runner)
        sub = await bus.subscribe(bus.subjects.all_control(), RAW, control.handle, concurrency=32)
        tg.create_task(self._unsubscribe_at_end(sub))
        self._fleet_news.listen(engine)
        await engine.rollcall()
        if not warm or not self.registry.knows_everyone():
            # Instances answer the rollcall within milliseconds; until then
            # every skill would look unknown (a standby hears only the
            # heartbeats of instances that said Hello before it started).
            await asyncio.sleep(cfg.registry_warmup_s)
        tg.create_task(engine.dispatcher.run())
        tg.create_task(deadlines.run(engine.on_timer))
        tg.create_task(self._sweep(engine))
        tg.create_task(
            bus.consume(
                bus.subjects.results(),
                results,
                _OUTCOME,
                lambda message, incoming: _outcomes(engine, message, incoming.subject),
                stream=bus.subjects.stream(Stream.RESULTS),
                batch=cfg.fetch_batch,
                ack_wait_s=cfg.ack_wait_s,
                parallel=True,
                max_failures=cfg.max_handler_failures,
                on_reject=engine.unreadable_outcome,
            )
        )
        tg.create_task(
            bus.consume(
                bus.subjects.submit(),
                tasks,
                _SUBMIT,
                lambda submit, _: engine.admit(submit),
                stream=bus.subjects.stream(Stream.TASKS),
                batch=cfg.fetch_batch,
                ack_wait_s=cfg.ack_wait_s,
                parallel=True,
                max_failures=cfg.max_handler_failures,
                on_reject=engine.unreadable_submit,
            )
        )
        engine.wake.set()
        self.active.set()

    async def _fence(self, lease: Lease, stream: Stream, subject: str, kind: str) -> str:
        return await fence(
            self.bus, lease, stream=self.bus.subjects.stream(stream), subject=subject,
            kind=kind, batch=self.cfg.fetch_batch, ack_wait_s=self.cfg.ack_wait_s,
        )  # fmt: skip

    async def _unsubscribe_at_end(self, sub: object) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            with contextlib.suppress(Exception):
                await self.bus.unsubscribe(sub, drain=False)  # type: ignore[arg-type]

    async def _keep_lease(self, lease: Lease) -> None:
        while True:
            await asyncio.sleep(max(0.0, lease.renewal_due_s()))
            await self._renew(lease)

    async def _renew(self, lease: Lease) -> None:
        """Renew; while that fails, retry until it succeeds or the lease's acting
        window closes, which ends the term (the rule is in lease.py)."""
        failing_since: float | None = None
        while (remaining_s := lease.remaining_s()) > 0:
            try:
                # Patience of ttl/3 per attempt (a loaded server is slow, not
                # gone). One given up on is abandoned, not undone on the
                # server: if it lands, the next one finds it (lease.py).
                renewed = await asyncio.wait_for(lease.renew(), min(remaining_s, lease.ttl_s / 3))
            except Exception as exc:
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.warning("lease renewal failed, retrying: %r", exc)
                await asyncio.sleep(min(lease.retry_interval_s, max(lease.remaining_s(), 0.0)))
                continue
            if not renewed:
                raise _Deposed("lease taken by another supervisor")
            if failing_since is not None:
                took_s = time.monotonic() - failing_since
                log.warning("lease renewed again after %.2f s of failures", took_s)
            return
        raise _Deposed("lease not renewed in time")

    async def _watch_stop(self) -> None:
        await self._stop.wait()
        raise _Deposed("shutting down")

    async def _sweep(self, engine: Engine) -> None:
        reconcile_every = max(1, int(1.0 / self.cfg.sweep_s))
        ticks = 0
        while True:
            await asyncio.sleep(self.cfg.sweep_s)
            engine.store.lease.check()
            engine.sweep()
            for gone in self.registry.expire(self.cfg.heartbeat_timeout_s * 3):
                self._persisted.pop(gone, None)
            ticks += 1
            if ticks % reconcile_every == 0:
                engine.reconcile()

    async def _on_announcement(
        self, message: AgentAnnouncement, incoming: Incoming
    ) -> Message | None:
        # The subject is what the sender's NATS user may publish on
        # (agent.<type>.>): an announcement must name the type and instance its
        # subject does, or an agent of one type could announce (and so end the
        # attempts of) an instance of another.
        expected = self._announced_on[type(message)](message.agent, message.instance_id)
        if incoming.subject != expected:
            why = f"{type(message).__name__} of {message.agent}/{message.instance_id} "
            why += f"came on {incoming.subject}"
            log.warning("refused announcement: %s", why)
            await self.bus.dead_letter(
                DlqReason.WRONG_INSTANCE, subject=incoming.subject, error=why,
                payload=incoming.data,
            )  # fmt: skip
            return None
        match message:
            case Hello():
                # A rollcall's answer that changes nothing is written like a
                # heartbeat: a rollcall of 10,000 instances is not 10,000 writes.
                changed = self.registry.on_hello(message)
                await self._persist_agent(message.instance_id, force=changed)
            case Heartbeat():
                self.registry.on_heartbeat(message)
                await self._persist_agent(message.instance_id, force=False)
            case Bye():
                self.registry.on_bye(message)
                await self._persist_agent(message.instance_id, force=True)
        return None

    async def _persist_agent(self, instance_id: str, *, force: bool) -> None:
        """Keep the instance's view in KV AGENTS (expiring), for operators and tools,
        and for the next leader: its `last_seen_ms` carries over (recovery.py).

        One record, built alone: O(1) whatever the size of the fleet, and
        never waited for (announcements are handled in order: a write's round
        trip per Hello made a rollcall of thousands take seconds, long enough
        for their heartbeats to look like strangers' and call the roll again).
        On a change (a new Hello, a Bye) the write is acknowledged; a
        heartbeat's is a plain publish to the bucket's subject (the stream
        stores it all the same): no ack per heartbeat. Best effort, as it
        always was: a heartbeat's lost write is made again by the next one.
        """
        lease = self._lease
        if lease is None or not lease.valid():
            return
        now = time.monotonic()
        every_s = persist_every_s(self.cfg.heartbeat_timeout_s)
        if not force and now - self._persisted.get(instance_id, 0.0) < every_s:
            return
        self._persisted[instance_id] = now
        load = self._engine.attempts.load if self._engine is not None else {}
        info = self.registry.info_of(instance_id, load)
        if info is None:
            return
        subject = self.bus.kv_subject(Bucket.AGENTS, instance_id)
        with contextlib.suppress(Exception):
            if force:
                written = await self.bus.publish_async(subject, encode(info))
                written.add_done_callback(_ignore_failure)
            else:
                await self.bus.transport.publish(subject, encode(info), None)


def _ignore_failure(future: "asyncio.Future[Any]") -> None:
    """A KV AGENTS write is best effort: its error is retrieved, not raised."""
    if not future.cancelled():
        future.exception()
