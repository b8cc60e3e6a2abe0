"""A no-op skill called over MCP (through `natsfleet gateway mcp`) against a direct
`FleetClient` call, in one run, every process separate.

    .venv/bin/python bench/gateway_mcp.py [--calls 500] [--inflight 20] [--seq 100]
                                          [--json-response]

Starts a nats-server (file store, temp dir), one supervisor, one no-op agent
(bench/noop_agent.py, capacity 100) and one MCP gateway. Prints, for each
path, p50/p99 of sequential call latency and calls/s with N in flight:

- direct: `FleetClient.submit` then `FleetClient.wait` (what the gateway does
  per call);
- mcp: the official SDK's `Client.call_tool` over streamable HTTP (protocol
  2026-07-28, SSE responses unless `--json-response`), API key in a header.

bench/gateway.py runs this and bench/gateway_a2a.py in one go.
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
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient
from natsfleet.process import NatsServer
from natsfleet.protocols import AgentInfo, NatsFleetError, TaskState

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-0123456789abcdef"
PREFIX = "bench"


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def spawn(log: Path, *args: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)]),
        "NATSFLEET_GATEWAY_KEYS": f"bench={SECRET}",
        "NATSFLEET_LOG": "WARNING",
    }
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "natsfleet.cli.main", *args, stdout=out, stderr=out, env=env
        )


def _read(log: Path) -> str:
    return log.read_text() if log.exists() else ""


async def until_logged(log: Path, pattern: str, timeout_s: float = 60) -> str:
    for _ in range(int(timeout_s / 0.05)):
        if found := re.search(pattern, _read(log)):
            return found.group(1)
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{pattern!r} never logged in {log}")


async def measure(
    one: Callable[[], Awaitable[None]], calls: int, inflight: int, seq: int, gateway_pid: int
) -> dict[str, float]:
    for _ in range(20):  # warm up
        await one()
    latencies = []
    for _ in range(seq):
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
    cpu = (time.process_time(), cpu_s(gateway_pid))
    async with asyncio.timeout(max(120.0, calls / 10)):
        await asyncio.gather(*(worker() for _ in range(min(inflight, calls))))
    rate = calls / (time.perf_counter() - started)
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": pct(latencies, 0.99),
        "calls_per_s": rate,
        # CPU per call in the throughput phase: this process (the caller) and the gateway.
        "caller_cpu_ms": 1000 * (time.process_time() - cpu[0]) / calls,
        "gateway_cpu_ms": 1000 * (cpu_s(gateway_pid) - cpu[1]) / calls,
    }


async def direct(client: FleetClient) -> None:
    task_id = await client.submit("echo", {})
    event = await client.wait(task_id, timeout_s=30)
    assert event.state == TaskState.COMPLETED, event


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--inflight", type=int, default=20)
    parser.add_argument("--seq", type=int, default=100)
    parser.add_argument("--json-response", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        server = NatsServer(store_dir=tmp / "js")
        await server.start()
        procs: list[asyncio.subprocess.Process] = []
        try:
            nats = ("--nats", server.url, "--prefix", PREFIX)
            procs.append(await spawn(tmp / "sup.log", "supervisor", *nats, "-v"))
            procs.append(
                await spawn(
                    tmp / "agent.log",
                    "agent",
                    "run",
                    "noop_agent:Noop",
                    *nats,
                    "--instance",
                    "noop-1",
                )
            )
            gateway_args = ["gateway", "mcp", *nats, "--port", "0", "--instance", "gw-1"]
            if args.json_response:
                gateway_args.append("--json-response")
            procs.append(await spawn(tmp / "gw.log", *gateway_args))
            url = await until_logged(tmp / "gw.log", r"listening on (http://\S+)")

            bus = await Bus(BusConfig(url=server.url, prefix=PREFIX), role="client").connect()
            client = FleetClient(bus)
            for _ in range(600):  # until the supervisor lists the agent
                if [a for a in await _agents(client) if a.alive]:
                    break
                await asyncio.sleep(0.1)
            sizes = _sizes(args, procs[-1].pid)
            results = {"direct": await measure(lambda: direct(client), **sizes)}

            headers = {"Authorization": f"Bearer {SECRET}"}
            limits = httpx2.Limits(max_connections=args.inflight + 5)
            async with (
                httpx2.AsyncClient(headers=headers, limits=limits, timeout=60) as http,
                Client(streamable_http_client(url, http_client=http)) as mcp,
            ):

                async def over_mcp() -> None:
                    result = await mcp.call_tool("echo", {})
                    assert not result.is_error, result

                results["mcp"] = await measure(over_mcp, **sizes)
            await bus.close()
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.terminate()
            await asyncio.gather(*(p.wait() for p in procs))
            await server.stop()

    base = results["direct"]
    for name, figures in results.items():
        print(
            f"{name:>7}: p50 {figures['p50_ms']:6.2f} ms  p99 {figures['p99_ms']:6.2f} ms  "
            f"{figures['calls_per_s']:7.0f} calls/s ({args.inflight} in flight)  "
            f"x{figures['p50_ms'] / base['p50_ms']:.1f} latency of direct; CPU per call: "
            f"caller {figures['caller_cpu_ms']:.1f} ms, gateway {figures['gateway_cpu_ms']:.1f} ms"
        )
    print(json.dumps(results))


async def _agents(client: FleetClient) -> tuple[AgentInfo, ...]:
    try:
        return await client.agents(timeout_s=1)
    except NatsFleetError:  # no supervisor yet
        return ()


def _sizes(args: argparse.Namespace, gateway_pid: int) -> dict[str, int]:
    return {
        "calls": args.calls,
        "inflight": args.inflight,
        "seq": args.seq,
        "gateway_pid": gateway_pid,
    }


if __name__ == "__main__":
    asyncio.run(main())
