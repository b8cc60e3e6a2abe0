"""The claim design of issue 19 item 4, in plain nats-py (no natsfleet runtime).

Agents claim tasks straight from a JetStream work queue; a watcher (the
supervisor's remaining role) only enforces claim deadlines. Two variants:

- **unfenced**: pull, run, publish the result to a results stream, ack.
- **fenced**: the claim is a compare-and-set on the task's KV record
  (`Nats-Expected-Last-Subject-Sequence` = the revision the queue message
  names: 0 for a first attempt, i.e. a create), writing attempt, holder, a
  token the claimer minted and a deadline; the queue message is acked only
  once that write is stored. The completion is a second compare-and-set,
  expecting the revision the claim got: any write in between (the watcher's
  re-queue, another claim) makes it fail, so a late holder's result is
  refused by the server itself. The bucket republishes every write it
  stored (with its revision) to `<p>.crec.<task>`: the client hears the
  completion there, and the watcher keeps the claims it hears in a deadline
  heap; on expiry it writes the record back `queued` with attempt + 1 (a CAS
  on the claim's own revision, so it loses to a completion that landed) and
  publishes a queue message naming the new revision.

    .venv/bin/python bench/claim_proto.py agent --url URL --prefix P --instance I
                                          [--capacity 100] [--fenced] [--stall-s S]
    .venv/bin/python bench/claim_proto.py watcher --url URL --prefix P

(`--layout stream`: the variant of bench/claim_stream.py, always fenced.)

`bench/claim_study.py` measures both against raw nats-py and natsfleet;
`fault_check` shows the fence holding (tests/bench/test_claim_fence.py).
"""

import argparse
import asyncio
import contextlib
import heapq
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    KeyValueConfig,
    RePublish,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError

EXPECT = "Nats-Expected-Last-Subject-Sequence"
WRONG_LAST_SEQUENCE = 10071  # JetStream's error code for a failed expectation


class Task(msgspec.Struct, frozen=True):
    """A work-queue message: attempt `attempt` of `task_id`, claimable by a
    CAS expecting the record's revision `rev` (0: no record yet)."""

    task_id: str
    attempt: int
    rev: int
    claim_ttl_ms: int
    input: msgspec.Raw = msgspec.Raw(b"null")


class Record(msgspec.Struct, frozen=True):
    """The task's KV record: `queued` (re-queued by the watcher), `claimed`
    (held by `holder` with `token` until `deadline_ms`) or `completed`."""

    task_id: str
    state: str
    attempt: int
    holder: str = ""
    token: str = ""
    deadline_ms: int = 0
    claim_ttl_ms: int = 0
    output: msgspec.Raw = msgspec.Raw(b"null")


class Result(msgspec.Struct, frozen=True):
    """The unfenced variant's result message."""

    task_id: str
    holder: str
    output: msgspec.Raw = msgspec.Raw(b"null")


ENC = msgspec.json.Encoder()
TASK = msgspec.json.Decoder(Task)
RECORD = msgspec.json.Decoder(Record)
RESULT = msgspec.json.Decoder(Result)


@dataclass(frozen=True)
class Names:
    """Every stream, bucket and subject of one prototype fleet."""

    prefix: str

    @property
    def queue(self) -> str:
        return f"{self.prefix.upper()}_CQ"

    @property
    def queue_subject(self) -> str:
        return f"{self.prefix}.cq"

    @property
    def results(self) -> str:
        return f"{self.prefix.upper()}_CRES"

    def result_subject(self, task_id: str) -> str:
        return f"{self.prefix}.cres.{task_id}"

    @property
    def stored_records(self) -> str:
        """Where the server republishes each record write the bucket stored."""
        return f"{self.prefix}.crec.>"

    @property
    def bucket(self) -> str:
        return f"{self.prefix.upper()}_CLAIMS"

    def record_subject(self, task_id: str) -> str:
        return f"$KV.{self.bucket}.{task_id}"

    @property
    def records(self) -> str:
        return f"$KV.{self.bucket}.>"

    consumer: str = "agents"


async def provision(
    js: JetStreamContext, names: Names, *, history: int = 1, ack_wait_s: float = 30.0
) -> None:
    """The work queue (and its one shared pull consumer), the results stream
    and the records bucket, all on file storage."""
    await js.add_stream(
        StreamConfig(
            name=names.queue,
            subjects=[names.queue_subject],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=120.0,
        )
    )
    await js.add_consumer(
        names.queue,
        ConsumerConfig(
            durable_name=names.consumer,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait_s,
            max_ack_pending=100_000,
            max_waiting=512,
        ),
    )
    await js.add_stream(
        StreamConfig(
            name=names.results, subjects=[f"{names.prefix}.cres.>"], storage=StorageType.FILE
        )
    )
    # The server republishes every stored record write: the client and the
    # watcher listen there, never on the record subjects themselves, whose
    # core subscribers also hear the writes the stream refused.
    republish = RePublish(src=names.records, dest=names.stored_records)
    await js.create_key_value(
        KeyValueConfig(
            bucket=names.bucket, history=history, storage=StorageType.FILE, republish=republish
        )
    )


async def submit(
    js: JetStreamContext, names: Names, task_id: str, *, claim_ttl_ms: int = 30_000
) -> None:
    """Queue a task's first attempt (deduplicated by `<task>:<attempt>`)."""
    task = Task(task_id, 1, 0, claim_ttl_ms)
    await js.publish(names.queue_subject, ENC.encode(task), headers={"Nats-Msg-Id": f"{task_id}:1"})


async def cas(js: JetStreamContext, subject: str, record: Record, expect: int) -> int | None:
    """Write `record` if its subject's last revision is `expect`: its new
    revision, or None when another write came first."""
    try:
        ack = await js.publish(subject, ENC.encode(record), headers={EXPECT: str(expect)})
    except APIError as err:
        if err.err_code == WRONG_LAST_SEQUENCE:
            return None
        raise
    return ack.seq


@dataclass
class AgentStats:
    claimed: int = 0
    completed: int = 0
    lost_claims: int = 0  # a stale queue message: the record had moved on
    refused: list[str] = field(default_factory=list)  # late results the fence refused
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # set on every update

    def note(self) -> None:
        self.changed.set()


class Puller:
    """Pull requests kept outstanding on the server, up to `credit` messages
    requested or being handled; each message is handled in its own task."""

    def __init__(
        self,
        nc: Client,
        stream: str,
        credit: int,
        handle: Callable[[Msg], Awaitable[None]],
        consumer: str = "agents",
    ) -> None:
        self.nc, self.credit, self.handle = nc, credit, handle
        self.requested = 0
        self.busy = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.api = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self.inbox = ""
        self.error: BaseException | None = None
        self.failed = asyncio.Event()  # a handler raised: the process should exit non-zero

    async def start(self) -> None:
        self.inbox = self.nc.new_inbox()
        await self.nc.subscribe(self.inbox, cb=self._on_msg)
        await self._refill(force=True)

    async def _refill(self, *, force: bool = False) -> None:
        free = self.credit - self.requested - self.busy
        if free > 0 and (force or free >= max(1, self.credit // 4)):
            self.requested += free
            body = json.dumps({"batch": free, "expires": 5_000_000_000}).encode()
            await self.nc.publish(self.api, body, reply=self.inbox)

    async def _on_msg(self, msg: Msg) -> None:
        status = (msg.headers or {}).get("Status")
        if status is not None:  # a request ended (408 expired, 409 ...) with some unfilled
            if status != "100":
                pending = int((msg.headers or {}).get("Nats-Pending-Messages", "0"))
                self.requested = max(0, self.requested - pending)
                await self._refill(force=True)
            return
        self.requested -= 1
        self.busy += 1
        task = asyncio.get_running_loop().create_task(self.handle(msg))
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.busy -= 1
        if not task.cancelled() and task.exception() is not None:
            self.error = task.exception()
            self.failed.set()
            return
        asyncio.get_running_loop().create_task(self._refill())


class Agent:
    """A prototype agent: claims from the queue, runs a no-op, reports.
    `stall_s` > 0 makes it sleep that long between claim and completion (the
    fault check's stalled holder)."""

    def __init__(
        self,
        nc: Client,
        names: Names,
        instance: str,
        *,
        capacity: int = 100,
        fenced: bool = True,
        stall_s: float = 0.0,
    ) -> None:
        self.nc, self.js, self.names, self.instance = nc, nc.jetstream(), names, instance
        self.fenced, self.stall_s = fenced, stall_s
        self.stats = AgentStats()
        handle = self._fenced if fenced else self._unfenced
        self.puller = Puller(nc, names.queue, capacity, handle, names.consumer)

    async def start(self) -> None:
        await self.puller.start()

    async def _unfenced(self, msg: Msg) -> None:
        task = TASK.decode(msg.data)
        self.stats.claimed += 1
        self.stats.note()
        if self.stall_s:
            await asyncio.sleep(self.stall_s)
        result = Result(task.task_id, self.instance)
        await self.js.publish(self.names.result_subject(task.task_id), ENC.encode(result))
        await msg.ack()
        self.stats.completed += 1
        self.stats.note()

    async def _fenced(self, msg: Msg) -> None:
        task = TASK.decode(msg.data)
        subject = self.names.record_subject(task.task_id)
        token = secrets.token_hex(8)  # minted by the claimer, stored before work starts
        deadline_ms = int(time.time() * 1000) + task.claim_ttl_ms
        claim = Record(
            task.task_id, "claimed", task.attempt, self.instance, token, deadline_ms,
            task.claim_ttl_ms,
        )  # fmt: skip
        claim_rev = await cas(self.js, subject, claim, task.rev)
        await msg.ack()  # the claim (or a newer write) is stored: the queue may forget it
        if claim_rev is None:
            self.stats.lost_claims += 1
            return
        self.stats.claimed += 1
        self.stats.note()
        if self.stall_s:
            await asyncio.sleep(self.stall_s)
        done = Record(task.task_id, "completed", task.attempt, self.instance, token)
        if await cas(self.js, subject, done, claim_rev) is None:
            self.stats.refused.append(f"{task.task_id}:{task.attempt}")
        else:
            self.stats.completed += 1
        self.stats.note()


@dataclass
class WatcherStats:
    seen: int = 0
    requeued: int = 0


class Watcher:
    """The supervisor's remaining role: re-queue claims past their deadline.

    It hears the records the bucket *stored*, republished by the server (a
    core subscriber of the record subjects would also hear writes the stream
    refused), each with its revision (`Nats-Sequence`)."""

    def __init__(self, nc: Client, names: Names, *, tick_s: float = 0.05) -> None:
        self.nc, self.js, self.names, self.tick_s = nc, nc.jetstream(), names, tick_s
        self.heap: list[tuple[int, str, str]] = []  # (deadline_ms, task_id, token)
        self.live: dict[tuple[str, str], tuple[int, Record]] = {}  # claim -> (rev, record)
        self.stats = WatcherStats()

    async def start(self) -> None:
        await self.nc.subscribe(self.names.stored_records, cb=self._on_record)

    async def _on_record(self, msg: Msg) -> None:
        self.stats.seen += 1
        record = RECORD.decode(msg.data)
        claim = (record.task_id, record.token)
        if record.state == "claimed":
            rev = int((msg.headers or {}).get("Nats-Sequence", "0"))
            self.live[claim] = (rev, record)
            heapq.heappush(self.heap, (record.deadline_ms, record.task_id, record.token))
        else:  # completed by its holder (or `queued`, which holds no claim)
            self.live.pop(claim, None)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            now_ms = int(time.time() * 1000)
            while self.heap and self.heap[0][0] <= now_ms:
                _, task_id, token = heapq.heappop(self.heap)
                found = self.live.pop((task_id, token), None)
                if found is not None:
                    await self.expire(*found)

    async def expire(self, rev: int, claim: Record) -> None:
        """Re-queue the task if the expired claim still holds it: a CAS on the
        claim's own revision, which loses to a completion landing meanwhile."""
        task_id = claim.task_id
        queued = Record(task_id, "queued", claim.attempt + 1)
        new_rev = await cas(self.js, self.names.record_subject(task_id), queued, rev)
        if new_rev is None:
            return
        # A crash here leaves a `queued` record with no queue message: a
        # restarted watcher re-publishes every queued record it finds (the
        # Msg-Id makes a repeat harmless). Not built in this prototype.
        task = Task(task_id, queued.attempt, new_rev, claim.claim_ttl_ms)
        await self.js.publish(
            self.names.queue_subject,
            ENC.encode(task),
            headers={"Nats-Msg-Id": f"{task_id}:{queued.attempt}"},
        )
        self.stats.requeued += 1


class Waiter:
    """The client's side: one core subscription to every task's outcome (the
    stored records the server republishes, for the fenced variant; the
    results stream's subject for the unfenced one), resolving the future of
    the task it names."""

    def __init__(self, nc: Client, names: Names, *, fenced: bool) -> None:
        self.nc, self.js, self.names, self.fenced = nc, nc.jetstream(), names, fenced
        self.futures: dict[str, asyncio.Future[str]] = {}
        self.completions: dict[str, int] = {}  # task_id -> completions heard

    async def start(self) -> None:
        subject = self.names.stored_records if self.fenced else f"{self.names.prefix}.cres.>"
        await self.nc.subscribe(subject, cb=self._on_msg)

    async def _on_msg(self, msg: Msg) -> None:
        if self.fenced:
            if b'"completed"' not in msg.data:  # the claim: the client hears both writes
                return
            record = RECORD.decode(msg.data)
            if record.state != "completed":
                return
            task_id, holder = record.task_id, record.holder
        else:
            result = RESULT.decode(msg.data)
            task_id, holder = result.task_id, result.holder
        self.completions[task_id] = self.completions.get(task_id, 0) + 1
        future = self.futures.get(task_id)
        if future is not None and not future.done():
            future.set_result(holder)

    async def run(self, task_id: str | None = None, *, claim_ttl_ms: int = 30_000) -> str:
        """Submit one task and wait for its completion: the holder's name."""
        task_id = task_id or secrets.token_hex(8)
        future = self.futures[task_id] = asyncio.get_running_loop().create_future()
        try:
            await submit(self.js, self.names, task_id, claim_ttl_ms=claim_ttl_ms)
            return await future  # the caller bounds the wait
        finally:
            del self.futures[task_id]


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


async def _serve(args: argparse.Namespace) -> None:
    nc = await nats.connect(args.url)
    agent: Any
    watcher: Any
    if args.layout == "stream":
        from claim_stream import StreamAgent, StreamNames, StreamWatcher

        names = StreamNames(args.prefix)
        if args.role == "agent":
            agent = StreamAgent(nc, names, args.instance, capacity=args.capacity,
                                stall_s=args.stall_s)  # fmt: skip
        else:
            watcher = StreamWatcher(nc, names)
    elif args.role == "agent":
        agent = Agent(
            nc, Names(args.prefix), args.instance,
            capacity=args.capacity, fenced=args.fenced, stall_s=args.stall_s,
        )  # fmt: skip
    else:
        watcher = Watcher(nc, Names(args.prefix))
    if args.role == "agent":
        await agent.start()
        await agent.puller.failed.wait()
        raise SystemExit(f"agent {args.instance}: a handler failed: {agent.puller.error!r}")
    await watcher.start()
    await watcher.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("role", choices=("agent", "watcher"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--instance", default="a1")
    parser.add_argument("--capacity", type=int, default=100)
    parser.add_argument("--fenced", action="store_true")
    parser.add_argument(
        "--layout", choices=("kv", "stream"), default="kv", help="stream: bench/claim_stream.py"
    )
    parser.add_argument("--stall-s", type=float, default=0.0)
    args = parser.parse_args()
    from natsfleet.process.loop import loop_factory  # uvloop, as natsfleet's processes run

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(_serve(args))


if __name__ == "__main__":
    main()
