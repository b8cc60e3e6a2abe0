"""Bus.request with msgspec Structs against raw nats-py request/reply.

Both ends run in separate processes; raw and Bus are measured in the same run
against the same embedded nats-server, and the script prints both rates and
their ratio. Target: the Bus at >= 0.8x raw throughput.

    .venv/bin/python bench/bus_overhead.py [--requests 20000] [--in-flight 100]
"""

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
import uvloop
from nats.aio.msg import Msg

from natsfleet.bus import Bus, BusConfig, Incoming
from natsfleet.process import NatsServer
from natsfleet.protocols import Ack, Codec, ErrorReply, Message, StatusRequest, TaskState, encode

SUBJECT_RAW = "bench.raw"
REQUEST = StatusRequest(task_id="01JBENCHMARK0000000000000")
REPLY = Ack(task_id="01JBENCHMARK0000000000000", state=TaskState.COMPLETED, detail="ok")
REQUEST_BYTES, REPLY_BYTES = encode(REQUEST), encode(REPLY)


async def raw_responder(url: str) -> None:
    nc = await nats.connect(url)

    async def handle(msg: Msg) -> None:
        await nc.publish(msg.reply, REPLY_BYTES)

    await nc.subscribe(SUBJECT_RAW, cb=handle)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def bus_responder(url: str) -> None:
    bus = await Bus(BusConfig(url=url, prefix="bench"), role="bench").connect()

    async def handle(_: StatusRequest, __: Incoming) -> Message:
        return REPLY

    await bus.subscribe(bus.subjects.control("status"), Codec[StatusRequest](StatusRequest), handle)
    print("ready", flush=True)
    await asyncio.Event().wait()


Call = Callable[[], Awaitable[object]]


async def measure(call: Call, requests: int, in_flight: int) -> tuple[float, float, float]:
    """(requests/s with `in_flight` concurrent, p50 ms, p99 ms sequential)."""
    for _ in range(200):
        await call()
    latencies = []
    for _ in range(min(2000, requests)):
        start = time.perf_counter()
        await call()
        latencies.append((time.perf_counter() - start) * 1000)
    latencies.sort()
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    rate = requests / (time.perf_counter() - start)
    return rate, statistics.median(latencies), latencies[int(len(latencies) * 0.99)]


def start_responder(mode: str, url: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--responder", mode, "--url", url],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


async def bench_raw(url: str, requests: int, in_flight: int) -> tuple[float, float, float]:
    nc = await nats.connect(url)
    try:
        return await measure(
            lambda: nc.request(SUBJECT_RAW, REQUEST_BYTES, timeout=5), requests, in_flight
        )
    finally:
        await nc.close()


async def bench_bus(url: str, requests: int, in_flight: int) -> tuple[float, float, float]:
    codec = Codec[Ack | ErrorReply](Ack | ErrorReply)
    async with Bus(BusConfig(url=url, prefix="bench")) as bus:
        subject = bus.subjects.control("status")
        return await measure(
            lambda: bus.request(subject, REQUEST, codec, timeout_s=5), requests, in_flight
        )


async def run(requests: int, in_flight: int) -> None:
    results = {}
    async with NatsServer(store_dir=Path(tempfile.mkdtemp())) as server:
        for mode, bench in (("raw", bench_raw), ("bus", bench_bus)):
            proc = start_responder(mode, server.url)
            try:
                results[mode] = await bench(server.url, requests, in_flight)
            finally:
                proc.terminate()
                proc.wait()
                if proc.stdout:
                    proc.stdout.close()
    raw, bus = results["raw"], results["bus"]
    print(f"requests={requests} in_flight={in_flight} payload={len(REQUEST_BYTES)}B")
    print(f"{'':6} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for name, (rate, p50, p99) in results.items():
        print(f"{name:6} {rate:10.0f} {p50:8.3f} {p99:8.3f}")
    print(f"ratio bus/raw throughput: {bus[0] / raw[0]:.2f}x (target >= 0.80x)")
    print(f"ratio bus/raw p50 latency: {bus[1] / raw[1]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--responder", choices=("raw", "bus"))
    parser.add_argument("--url")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=100)
    args = parser.parse_args()
    if args.responder == "raw":
        uvloop.run(raw_responder(args.url))
    elif args.responder == "bus":
        uvloop.run(bus_responder(args.url))
    else:
        uvloop.run(run(args.requests, args.in_flight))


if __name__ == "__main__":
    main()
