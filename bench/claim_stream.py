"""The fenced claim design with the queue and the records in one stream.

bench/claim_proto.py keeps a work queue and a KV bucket apart, so the
watcher's re-queue is two writes (the record's CAS, then a queue message),
with a crash window between them, and every reader of the records hears the
claims too. Here each task's writes go to one subject per state,
`<p>.rec.<task>.q|c|d` (queued, claimed, completed), in a stream that keeps
them, and every write expects the last sequence of the task's subjects
(`Nats-Expected-Last-Subject-Sequence-Subject: <p>.rec.<task>.*`, nats-server
2.11+, what the agent loop's journal uses). So:

- a submit is the `q` write expecting 0 (a duplicate is refused by the
  server, no de-duplication window involved);
- agents pull from one consumer filtered on `<p>.rec.*.q`, and claim with a
  `c` write expecting the queued message's own stream sequence;
- the completion is a `d` write expecting the claim's sequence;
- the watcher's re-queue is ONE `q` write expecting the claim's sequence:
  the record and the queue message at once, nothing to lose in between.

The server republishes what it stored to `<p>.srec.<task>.<state>`: the
client listens to `*.d` only, the watcher to `*.c` and `*.d`.
"""

import asyncio
import contextlib
import heapq
import secrets
import time
from dataclasses import dataclass

import nats
from claim_proto import (
    ENC,
    EXPECT,
    RECORD,
    WRONG_LAST_SEQUENCE,
    AgentStats,
    FaultReport,
    Puller,
    Record,
    WatcherStats,
    until,
)
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RePublish, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError

EXPECT_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"


@dataclass(frozen=True)
class StreamNames:
    prefix: str
    consumer: str = "agents"

    @property
    def stream(self) -> str:
        return f"{self.prefix.upper()}_CREC"

    def subject(self, task_id: str, state: str) -> str:
        return f"{self.prefix}.rec.{task_id}.{state}"

    def stored(self, state: str) -> str:
        """Where the server republishes the stored writes of one state."""
        return f"{self.prefix}.srec.*.{state}"


async def provision_stream(js: JetStreamContext, names: StreamNames) -> None:
    await js.add_stream(
        StreamConfig(
            name=names.stream,
            subjects=[f"{names.prefix}.rec.>"],
            storage=StorageType.FILE,
            republish=RePublish(src=f"{names.prefix}.rec.>", dest=f"{names.prefix}.srec.>"),
        )
    )
    await js.add_consumer(
        names.stream,
        ConsumerConfig(
            durable_name=names.consumer,
            filter_subject=f"{names.prefix}.rec.*.q",
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=30.0,
            max_ack_pending=100_000,
            max_waiting=512,
        ),
    )


async def write(
    js: JetStreamContext, names: StreamNames, record: Record, state: str, expect: int
) -> int | None:
    """Append the task's next write if its last one is still `expect`: the new
    sequence, or None when another write came first."""
    headers = {EXPECT: str(expect), EXPECT_SUBJECT: names.subject(record.task_id, "*")}
    try:
        ack = await js.publish(
            names.subject(record.task_id, state), ENC.encode(record), headers=headers
        )
    except APIError as err:
        if err.err_code == WRONG_LAST_SEQUENCE:
            return None
        raise
    return ack.seq


async def submit_stream(
    js: JetStreamContext, names: StreamNames, task_id: str, *, claim_ttl_ms: int = 30_000
) -> None:
    queued = Record(task_id, "queued", 1, claim_ttl_ms=claim_ttl_ms)
    if await write(js, names, queued, "q", 0) is None:
        raise ValueError(f"task {task_id} exists")


class StreamAgent:
    """Claims `q` writes by a `c` write, completes by a `d` write."""

    def __init__(
        self, nc: Client, names: StreamNames, instance: str, *, capacity: int = 100,
        stall_s: float = 0.0,
    ) -> None:  # fmt: skip
        self.js, self.names, self.instance, self.stall_s = nc.jetstream(), names, instance, stall_s
        self.stats = AgentStats()
        self.puller = Puller(nc, names.stream, capacity, self._handle, names.consumer)

    async def start(self) -> None:
        await self.puller.start()

    async def _handle(self, msg: Msg) -> None:
        queued = RECORD.decode(msg.data)
        token = secrets.token_hex(8)
        deadline_ms = int(time.time() * 1000) + queued.claim_ttl_ms
        claim = Record(
            queued.task_id, "claimed", queued.attempt, self.instance, token, deadline_ms,
            queued.claim_ttl_ms,
        )  # fmt: skip
        claim_seq = await write(self.js, self.names, claim, "c", msg.metadata.sequence.stream)
        await msg.ack()
        if claim_seq is None:
            self.stats.lost_claims += 1
            return
        self.stats.claimed += 1
        self.stats.note()
        if self.stall_s:
            await asyncio.sleep(self.stall_s)
        done = Record(queued.task_id, "completed", queued.attempt, self.instance, token)
        if await write(self.js, self.names, done, "d", claim_seq) is None:
            self.stats.refused.append(f"{queued.task_id}:{queued.attempt}")
        else:
            self.stats.completed += 1
        self.stats.note()


class StreamWatcher:
    """Re-queues an expired claim with one write expecting the claim's sequence."""

    def __init__(self, nc: Client, names: StreamNames, *, tick_s: float = 0.05) -> None:
        self.nc, self.js, self.names, self.tick_s = nc, nc.jetstream(), names, tick_s
        self.heap: list[tuple[int, str, str]] = []
        self.live: dict[tuple[str, str], tuple[int, Record]] = {}
        self.stats = WatcherStats()

    async def start(self) -> None:
        await self.nc.subscribe(self.names.stored("c"), cb=self._on_claim)
        await self.nc.subscribe(self.names.stored("d"), cb=self._on_done)

    async def _on_claim(self, msg: Msg) -> None:
        self.stats.seen += 1
        claim = RECORD.decode(msg.data)
        seq = int((msg.headers or {}).get("Nats-Sequence", "0"))
        self.live[(claim.task_id, claim.token)] = (seq, claim)
        heapq.heappush(self.heap, (claim.deadline_ms, claim.task_id, claim.token))

    async def _on_done(self, msg: Msg) -> None:
        self.stats.seen += 1
        done = RECORD.decode(msg.data)
        self.live.pop((done.task_id, done.token), None)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            now_ms = int(time.time() * 1000)
            while self.heap and self.heap[0][0] <= now_ms:
                _, task_id, token = heapq.heappop(self.heap)
                found = self.live.pop((task_id, token), None)
                if found is not None:
                    seq, claim = found
                    queued = Record(
                        task_id, "queued", claim.attempt + 1, claim_ttl_ms=claim.claim_ttl_ms
                    )
                    if await write(self.js, self.names, queued, "q", seq) is not None:
                        self.stats.requeued += 1


class StreamWaiter:
    """The client's side: the stored completions the server republishes."""

    def __init__(self, nc: Client, names: StreamNames) -> None:
        self.nc, self.js, self.names = nc, nc.jetstream(), names
        self.futures: dict[str, asyncio.Future[str]] = {}
        self.completions: dict[str, int] = {}

    async def start(self) -> None:
        await self.nc.subscribe(self.names.stored("d"), cb=self._on_msg)

    async def _on_msg(self, msg: Msg) -> None:
        done = RECORD.decode(msg.data)
        self.completions[done.task_id] = self.completions.get(done.task_id, 0) + 1
        future = self.futures.get(done.task_id)
        if future is not None and not future.done():
            future.set_result(done.holder)

    async def run(self, task_id: str | None = None, *, claim_ttl_ms: int = 30_000) -> str:
        task_id = task_id or secrets.token_hex(8)
        future = self.futures[task_id] = asyncio.get_running_loop().create_future()
        try:
            await submit_stream(self.js, self.names, task_id, claim_ttl_ms=claim_ttl_ms)
            return await future
        finally:
            del self.futures[task_id]


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
