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
import heapq
import secrets
import time
from dataclasses import dataclass

from claim_proto import (
    ENC,
    EXPECT,
    RECORD,
    WRONG_LAST_SEQUENCE,
    AgentStats,
    Record,
    WatcherStats,
)
from claim_pull import Puller
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RePublish, StorageType, StreamConfig
from nats.js.errors import APIError

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
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.futures[task_id] = future
        try:
            await submit_stream(self.js, self.names, task_id, claim_ttl_ms=claim_ttl_ms)
            return await future
        finally:
            del self.futures[task_id]
