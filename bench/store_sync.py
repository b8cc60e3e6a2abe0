"""What one JetStream store costs with `sync_interval: always`, and what can share a sync.

    .venv/bin/python bench/store_sync.py [--msgs 2000] [--lazy]

Starts a nats-server (file store in a temp dir, GOMAXPROCS as `natsfleet up`
gives an embedded server) with `sync_interval: always` (`--lazy`: the
default) and measures, from one nats-py client:

- stores per second into one stream with 1, 4, 16, 64 and 256 publishes in
  flight, and spread over 1, 2, 4 and 8 streams: whether writes that wait
  together share an fsync (a group commit) or are synced one by one;
- the server's CPU per store, per replacing store (a KV-like stream, one
  message per subject) and per work-queue ack (the removal of the message);
- atomic batch publishes (`allow_atomic`, one commit for N messages): their
  latency per batch, sequential.

These are the figures behind docs/performance.md, "Durable mode".
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js import api as js_api

from natsfleet.process import NatsServer, shared_gomaxprocs
from natsfleet.process.loop import loop_factory

_BODY = b"x" * 200  # about a small task record or event


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def rate(total: int, inflight: int, one: Callable[[int], Awaitable[object]]) -> float:
    """Calls of `one(i)` per second, `inflight` workers each awaiting its call."""
    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await one(left)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return total / (time.perf_counter() - start)


async def concurrency(js: JetStreamContext, total: int) -> None:
    for streams in (1, 2, 4, 8):
        row = []
        for inflight in (1, 4, 16, 64, 256):

            async def one(i: int, streams: int = streams) -> object:
                return await js.publish(f"s{i % streams}.x", _BODY)

            row.append(f"{inflight:>3} in flight {await rate(total, inflight, one):6.0f}")
        print(f"stores/s into {streams} stream(s): " + ", ".join(row))


async def cpu_per_op(nc: Client, js: JetStreamContext, server_pid: int, total: int) -> None:
    await js.add_stream(name="KVLIKE", subjects=["k.>"], max_msgs_per_subject=1)
    await js.add_stream(name="WORK", subjects=["w.>"], retention=js_api.RetentionPolicy.WORK_QUEUE)

    async def measured(what: str, run: Callable[[], Awaitable[None]]) -> None:
        before, start = cpu_s(server_pid), time.perf_counter()
        await run()
        wall = time.perf_counter() - start
        used = cpu_s(server_pid) - before
        print(f"{what}: {total / wall:6.0f}/s, server CPU {1e6 * used / total:4.0f} us each")

    async def stores() -> None:
        await rate(total, 64, lambda i: js.publish(f"k.n{i}", _BODY))

    async def replacing() -> None:
        await rate(total, 64, lambda i: js.publish(f"k.r{i % 64}", _BODY))

    async def queued() -> None:
        await rate(total, 64, lambda i: js.publish("w.x", _BODY))

    sub = await js.pull_subscribe("w.x", "bench")

    async def acks() -> None:
        done = 0
        while done < total:
            msgs = await sub.fetch(64, timeout=5)
            await asyncio.gather(*(m.ack_sync() for m in msgs))
            done += len(msgs)

    await measured("store, a new subject", stores)
    await measured("store replacing its subject's last (KV history 1)", replacing)
    await measured("store into a work queue", queued)
    await measured("work-queue ack (removes the message)", acks)


async def atomic_batches(nc: Client) -> None:
    config = {"name": "ATOMIC", "subjects": ["a.>"], "allow_atomic": True}
    reply = json.loads(
        (await nc.request("$JS.API.STREAM.CREATE.ATOMIC", json.dumps(config).encode())).data
    )
    if "error" in reply:
        print(f"atomic batches: not available ({reply['error'].get('description')})")
        return
    for size in (1, 10, 50):
        start = time.perf_counter()
        for _ in range(50):
            batch = uuid.uuid4().hex
            for seq in range(1, size):
                headers = {"Nats-Batch-Id": batch, "Nats-Batch-Sequence": str(seq)}
                await nc.publish(f"a.{seq}", _BODY, headers=headers)
            headers = {"Nats-Batch-Id": batch, "Nats-Batch-Sequence": str(size),
                       "Nats-Batch-Commit": "1"}  # fmt: skip
            ack = await nc.request(f"a.{size}", _BODY, headers=headers, timeout=10)
            if b'"error"' in ack.data:
                raise RuntimeError(ack.data.decode())
        per_batch = (time.perf_counter() - start) / 50
        print(f"atomic batch of {size:>2}: {1000 * per_batch:.2f} ms each, sequential "
              f"({size / per_batch:.0f} messages/s)")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--msgs", type=int, default=2000, help="stores per measurement")
    parser.add_argument("--lazy", action="store_true", help="nats-server's default sync instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config_file = None
        if not args.lazy:
            config_file = Path(tmp) / "nats.conf"
            config_file.write_text("jetstream {\n  sync_interval: always\n}\n")
        async with NatsServer(
            store_dir=Path(tmp) / "js", gomaxprocs=shared_gomaxprocs(), config_file=config_file
        ) as server:
            nc = await nats.connect(server.url)
            js = nc.jetstream()
            for i in range(8):
                await js.add_stream(name=f"S{i}", subjects=[f"s{i}.>"])
            await concurrency(js, args.msgs)
            await cpu_per_op(nc, js, server.pid or 0, args.msgs)
            await atomic_batches(nc)
            await nc.close()
    sync = "lazy (default)" if args.lazy else "always"
    print(f"sync_interval: {sync}; Python {sys.version.split()[0]}")


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())
