"""The claim prototypes' fault checks (issue 19 item 4), on a real nats-server.

A holder claims a task and stalls past its claim deadline: the watcher
re-queues it, another agent completes it, and the stalled holder's late
completion must be refused (`fault_check` for the KV layout of
bench/claim_proto.py, `fault_check_stream` for bench/claim_stream.py). And the
contrast: the same stall without the fence stores two results
(`unfenced_check`). Run by bench/claim_study.py and
tests/bench/test_claim_fence.py.
"""

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import nats
from claim_proto import RECORD, Agent, AgentStats, Names, Record, Waiter, Watcher, provision
from claim_stream import (
    StreamAgent,
    StreamNames,
    StreamWaiter,
    StreamWatcher,
    provision_stream,
)
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError


@dataclass
class FaultReport:
    """What the fault check saw; `holds` is the verdict."""

    task_id: str
    first_holder: str  # whose completion the client heard first
    record: Record
    completed_writes: int
    refused: list[str]
    requeued: int
    staller_claimed: int
    completions_heard: int
    # completed writes a core subscriber of the record's subject heard: the
    # refused one too, which is why nobody may trust that subject as news
    core_completed_heard: int

    @property
    def holds(self) -> bool:
        return (
            self.record.state == "completed"
            and self.first_holder == self.record.holder == "good"
            and self.record.attempt == 2
            and self.completed_writes == 1
            and self.refused == [f"{self.task_id}:1"]
            and self.requeued == 1
            and self.staller_claimed == 1
            and self.completions_heard == 1
        )


async def until(stats: AgentStats, check: Callable[[], bool], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():
            stats.changed.clear()
            await stats.changed.wait()


async def fault_check(url: str, prefix: str, *, claim_ttl_ms: int = 300) -> FaultReport:
    """A holder that claims, then stalls past its deadline: the watcher
    re-queues the task, another agent completes it, and the stalled holder's
    late completion is refused by the CAS. Every role has its own connection;
    the bucket keeps history so the completed writes can be counted."""
    names = Names(prefix)
    conns = [await nats.connect(url) for _ in range(4)]
    driver, staller_nc, good_nc, watcher_nc = conns
    background: list[asyncio.Task[None]] = []
    try:
        await provision(driver.jetstream(), names, history=16)
        staller = Agent(staller_nc, names, "staller", capacity=1, stall_s=4 * claim_ttl_ms / 1000)
        watcher = Watcher(watcher_nc, names, tick_s=0.02)
        waiter = Waiter(driver, names, fenced=True)
        heard: list[Record] = []

        async def on_record(msg: Msg) -> None:
            heard.append(RECORD.decode(msg.data))

        await driver.subscribe(names.records, cb=on_record)
        await watcher.start()
        await waiter.start()
        await staller.start()
        background.append(asyncio.get_running_loop().create_task(watcher.run()))
        task_id = secrets.token_hex(8)
        done = asyncio.get_running_loop().create_task(
            waiter.run(task_id, claim_ttl_ms=claim_ttl_ms)
        )
        await until(staller.stats, lambda: staller.stats.claimed == 1, 10)
        good = Agent(good_nc, names, "good", capacity=10)
        await good.start()  # from now on it competes for the queue
        async with asyncio.timeout(10):
            first_holder = await done
        # The late completion comes back, refused or (were the fence broken) not.
        ended = staller.stats
        await until(ended, lambda: ended.completed + len(ended.refused) >= 1, 10)
        kv = await driver.jetstream().key_value(names.bucket)
        history = await kv.history(task_id)
        records = [RECORD.decode(entry.value or b"") for entry in history]
        return FaultReport(
            task_id=task_id,
            first_holder=first_holder,
            record=records[-1],
            completed_writes=sum(r.state == "completed" for r in records),
            refused=list(staller.stats.refused),
            requeued=watcher.stats.requeued,
            staller_claimed=staller.stats.claimed,
            completions_heard=waiter.completions.get(task_id, 0),
            core_completed_heard=sum(r.state == "completed" for r in heard),
        )
    finally:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for nc in conns:
            await nc.close()


async def unfenced_check(url: str, prefix: str, *, ack_wait_s: float = 0.3) -> int:
    """The same stall without the fence: the unacknowledged message comes back
    after `ack_wait_s` to another agent, and both results are stored. Returns
    how many results the results stream holds for the one task (2: doubled)."""
    names = Names(prefix)
    conns = [await nats.connect(url) for _ in range(3)]
    driver, staller_nc, good_nc = conns
    try:
        js = driver.jetstream()
        await provision(js, names, ack_wait_s=ack_wait_s)
        staller = Agent(staller_nc, names, "staller", capacity=1, fenced=False,
                        stall_s=4 * ack_wait_s)  # fmt: skip
        await staller.start()
        waiter = Waiter(driver, names, fenced=False)
        await waiter.start()
        task_id = secrets.token_hex(8)
        done = asyncio.get_running_loop().create_task(waiter.run(task_id))
        await until(staller.stats, lambda: staller.stats.claimed == 1, 10)
        good = Agent(good_nc, names, "good", capacity=10, fenced=False)
        await good.start()
        async with asyncio.timeout(10):
            await done
        await until(staller.stats, lambda: staller.stats.completed == 1, 10)
        info = await js.stream_info(names.results, subjects_filter=names.result_subject(task_id))
        return (info.state.subjects or {}).get(names.result_subject(task_id), 0)
    finally:
        for nc in conns:
            await nc.close()


async def history(js: JetStreamContext, names: StreamNames, task_id: str) -> list[Record]:
    """Every stored write of one task, oldest first."""
    found: list[Record] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(names.stream, seq, names.subject(task_id, "*"), next=True)
        except NotFoundError:
            return found
        found.append(RECORD.decode(msg.data or b""))
        seq = (msg.seq or seq) + 1


async def fault_check_stream(url: str, prefix: str, *, claim_ttl_ms: int = 300) -> FaultReport:
    """claim_proto.fault_check's scenario on this layout."""
    names = StreamNames(prefix)
    conns = [await nats.connect(url) for _ in range(4)]
    driver, staller_nc, good_nc, watcher_nc = conns
    watch: asyncio.Task[None] | None = None
    try:
        js = driver.jetstream()
        await provision_stream(js, names)
        staller = StreamAgent(staller_nc, names, "staller", capacity=1,
                              stall_s=4 * claim_ttl_ms / 1000)  # fmt: skip
        watcher = StreamWatcher(watcher_nc, names, tick_s=0.02)
        waiter = StreamWaiter(driver, names)
        heard: list[Record] = []

        async def on_done(msg: Msg) -> None:  # the raw subject: refused writes too
            heard.append(RECORD.decode(msg.data))

        await driver.subscribe(names.subject("*", "d"), cb=on_done)
        await watcher.start()
        await waiter.start()
        await staller.start()
        watch = asyncio.get_running_loop().create_task(watcher.run())
        task_id = secrets.token_hex(8)
        done = asyncio.get_running_loop().create_task(
            waiter.run(task_id, claim_ttl_ms=claim_ttl_ms)
        )
        await until(staller.stats, lambda: staller.stats.claimed == 1, 10)
        good = StreamAgent(good_nc, names, "good", capacity=10)
        await good.start()
        async with asyncio.timeout(10):
            first_holder = await done
        ended = staller.stats
        await until(ended, lambda: ended.completed + len(ended.refused) >= 1, 10)
        records = await history(js, names, task_id)
        return FaultReport(
            task_id=task_id,
            first_holder=first_holder,
            record=records[-1],
            completed_writes=sum(r.state == "completed" for r in records),
            refused=list(staller.stats.refused),
            requeued=watcher.stats.requeued,
            staller_claimed=staller.stats.claimed,
            completions_heard=waiter.completions.get(task_id, 0),
            core_completed_heard=len(heard),
        )
    finally:
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        for nc in conns:
            await nc.close()
