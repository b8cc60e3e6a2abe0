"""Output chunks through the OUTPUT stream against core NATS, in one run.

    .venv/bin/python bench/stream.py [--chunks 5000]

One embedded nats-server (file store). Core: `Bus.publish` of each chunk to a
live subscriber. Stream: what an agent's output pump does (`Bus.publish_js`
into OUTPUT, one stored chunk after another) to a watcher following the task
with `FleetClient`'s `output_stream` reader. Prints chunks/s sent back
to back and the publish-to-receipt latency (p50, p99) of chunks sent one at a
time, for each, and their ratios. An agent
sends a few of these per second per running task (its pump batches tokens
every 50 ms), so the figure that matters is the per-chunk cost, not the rate.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from natsfleet.bus import Bus, BusConfig, Incoming
from natsfleet.client.output import follow
from natsfleet.process import NatsServer
from natsfleet.process.loop import loop_factory
from natsfleet.protocols import Codec, Message, OutputChunk, TaskOutput


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def chunk(n: int) -> OutputChunk:
    # The send time rides in the text: what a watcher sees is what it measures.
    return OutputChunk(task_id="T1", token="k", seq=n + 1, text=f"{time.perf_counter()}", attempt=1)


class Receiver:
    """Counts what a watcher received; `wait(n)` until the n-th arrived."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self._more = asyncio.Event()

    def got(self, message: OutputChunk) -> None:
        self.latencies_ms.append((time.perf_counter() - float(message.text)) * 1000)
        self._more.set()

    async def wait(self, count: int) -> None:
        while len(self.latencies_ms) < count:
            self._more.clear()
            await asyncio.wait_for(self._more.wait(), 30)


async def measure(
    send: Callable[[int], Awaitable[None]], receiver: Receiver, count: int, one_by_one: int
) -> tuple[float, list[float]]:
    """(chunks/s sending `count` back to back, latencies of `one_by_one` sent
    each after the previous arrived)."""
    for n in range(one_by_one):
        await send(n)
        await receiver.wait(n + 1)
    sequential = receiver.latencies_ms[:]
    started = time.perf_counter()
    for n in range(one_by_one, one_by_one + count):
        await send(n)
    await receiver.wait(one_by_one + count)
    return count / (time.perf_counter() - started), sequential


async def core(bus: Bus, count: int, one_by_one: int) -> tuple[float, list[float]]:
    subject = bus.subjects.output("writer", "w-1", "core-task")
    receiver = Receiver()

    async def on_chunk(message: TaskOutput, _: Incoming) -> Message | None:
        assert isinstance(message, OutputChunk)
        receiver.got(message)
        return None

    await bus.subscribe(subject, Codec[TaskOutput](TaskOutput), on_chunk)

    async def send(n: int) -> None:
        await bus.publish(subject, chunk(n))

    return await measure(send, receiver, count, one_by_one)


async def stream(bus: Bus, count: int, one_by_one: int) -> tuple[float, list[float]]:
    subject = bus.subjects.output("writer", "w-1", "stream-task")
    ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    receiver = Receiver()
    ready = asyncio.Event()

    async def watch() -> None:
        async for item in follow(bus, "stream-task", lambda: ended, ready=ready):
            assert isinstance(item.message, OutputChunk)
            receiver.got(item.message)

    watcher = asyncio.create_task(watch())
    await ready.wait()

    async def send(n: int) -> None:
        # As the agent's pump stores a flush: acknowledged before the next.
        await bus.publish_js(subject, chunk(n), msg_id=f"stream-task:k:{n + 1}")

    result = await measure(send, receiver, count, one_by_one)
    ended.set_result(None)
    await asyncio.wait_for(watcher, 60)
    return result


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=5000)
    parser.add_argument("--seq", type=int, default=300, help="chunks timed one at a time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        async with NatsServer(store_dir=Path(tmp) / "js") as server:
            async with Bus(BusConfig(url=server.url, prefix="bench"), role="bench") as bus:
                await bus.provision()
                core_rate, core_lat = await core(bus, args.chunks, args.seq)
                stream_rate, stream_lat = await stream(bus, args.chunks, args.seq)
    rows = (("core NATS", core_rate, core_lat), ("OUTPUT", stream_rate, stream_lat))
    for name, rate, lat in rows:
        print(f"{name:>10}: {rate:8.0f} chunks/s back to back; one at a time "
              f"p50 {statistics.median(lat):.3f} ms  p99 {pct(lat, 0.99):.3f} ms")  # fmt: skip
    print(
        f"ratio OUTPUT/core: rate {core_rate / stream_rate:.1f}x slower, "
        f"p50 {statistics.median(stream_lat) / statistics.median(core_lat):.1f}x"
    )


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())
