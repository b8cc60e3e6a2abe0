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
bench/claim_checks.py shows the fence holding (tests/bench/test_claim_fence.py).
"""

import argparse
import asyncio
import heapq
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import nats
from claim_pull import Puller
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
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.futures[task_id] = future
        try:
            await submit(self.js, self.names, task_id, claim_ttl_ms=claim_ttl_ms)
            return await future  # the caller bounds the wait
        finally:
            del self.futures[task_id]


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
