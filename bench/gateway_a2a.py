"""A no-op skill called through the gateways against a direct `FleetClient` call, in one run.

    .venv/bin/python bench/gateway_a2a.py [--calls 300] [--inflight 20]

One embedded nats-server, a supervisor, two no-op agents (bench/noop_agent.py,
capacity 100 each) and one `natsfleet gateway a2a` process. Each path calls
the skill `echo` (it returns at once) and waits for its end:

- direct: `FleetClient.submit` then `wait`;
- A2A: the a2a-sdk client's blocking `SendMessage` (JSON-RPC over HTTP) to the gateway.

For each: the latency of calls made one after another (p50, p99), then calls
per second with `--inflight` at once, and the ratios to the direct call.
"""

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from a2a.client import ClientConfig, ClientFactory
from a2a.types import Message, Part, Role, SendMessageRequest, TaskState

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient
from natsfleet.process import NatsServer
from natsfleet.process.loop import loop_factory

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-secret-0123456789"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(
    one: Callable[[], Awaitable[None]], calls: int, inflight: int
) -> tuple[list[float], float]:
    """(latencies in ms of `calls` made one after another, calls/s with `inflight` at once)."""
    latencies: list[float] = []
    for _ in range(calls):
        started = time.perf_counter()
        await one()
        latencies.append((time.perf_counter() - started) * 1000)
    left = calls

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await one()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return latencies, calls / (time.perf_counter() - started)


async def spawn(
    log: Path, *args: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, *args, stdout=out, stderr=out, env=os.environ | (env or {})
        )


async def gateway_url(log: Path, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = await asyncio.to_thread(log.read_text)
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+/)", text)
        if found:
            return found.group(1)
        await asyncio.sleep(0.1)  # its log line is the only sign of readiness
    raise TimeoutError(f"the gateway did not start: {text[-2000:]}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--inflight", type=int, default=20)
    args = parser.parse_args()
    procs: list[asyncio.subprocess.Process] = []
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        async with NatsServer(store_dir=logs / "js") as server:
            url, prefix = server.url, "bench"
            base = ["-m", "natsfleet.cli.main"]
            nats = ["--nats", url, "--prefix", prefix]
            sup = json.dumps({"supervisor_id": "bench-sup", "registry_warmup_s": 0.3})
            try:
                procs.append(await spawn(logs / "sup.log", *base, "supervisor", *nats,
                                         "--config-json", sup))  # fmt: skip
                for name in ("b1", "b2"):
                    procs.append(await spawn(logs / f"{name}.log", *base, "agent", "run",
                                             "noop_agent:Noop", *nats, "--instance", name,
                                             env={"PYTHONPATH": str(ROOT / "bench")}))  # fmt: skip
                keys = {"NATSFLEET_GATEWAY_KEYS": f"bench={KEY}"}
                procs.append(await spawn(logs / "a2a.log", *base, "gateway", "a2a", *nats,
                                         "--port", "0", "--id", "bench-a2a", env=keys))  # fmt: skip
                a2a_url = await gateway_url(logs / "a2a.log")
                async with Bus(BusConfig(url=url, prefix=prefix), role="bench") as bus:
                    await bus.provision()
                    fleet = FleetClient(bus)
                    while len(await fleet.agents(timeout_s=5)) < 2:  # noqa: ASYNC110
                        await asyncio.sleep(0.2)  # the registry has no "joined" event to await

                    async def direct() -> None:
                        task_id = await fleet.submit("echo", {})
                        await fleet.wait(task_id, timeout_s=30)

                    headers = {"Authorization": f"Bearer {KEY}"}
                    limits = httpx.Limits(max_connections=args.inflight * 2)
                    async with httpx.AsyncClient(
                        headers=headers, timeout=60, limits=limits
                    ) as http:
                        config = ClientConfig(httpx_client=http, streaming=False)
                        a2a = await ClientFactory(config).create_from_url(a2a_url)

                        async def over_a2a() -> None:
                            message = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER,
                                              parts=[Part(text="")])  # fmt: skip
                            message.metadata.update({"skill": "echo"})
                            request = SendMessageRequest(message=message)
                            async for reply in a2a.send_message(request):
                                assert reply.task.status.state == TaskState.TASK_STATE_COMPLETED

                        rows = [
                            (
                                "direct FleetClient",
                                *await measure(direct, args.calls, args.inflight),
                            ),
                            (
                                "A2A SendMessage",
                                *await measure(over_a2a, args.calls, args.inflight),
                            ),
                        ]
                        await a2a.close()
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    try:
                        await asyncio.wait_for(proc.wait(), 10)
                    except TimeoutError:
                        proc.kill()
                        await proc.wait()
    _, base_lat, base_rate = rows[0]
    for name, lat, rate in rows:
        p50 = statistics.median(lat)
        print(f"{name:>20}: p50 {p50:7.2f} ms  p99 {pct(lat, 0.99):7.2f} ms  "
              f"{rate:7.0f} calls/s ({args.inflight} in flight)  "
              f"vs direct: p50 {p50 / statistics.median(base_lat):.1f}x, "
              f"rate {base_rate / rate:.1f}x lower")  # fmt: skip
    print(f"{args.calls} calls each; Python {sys.version.split()[0]}")


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())
