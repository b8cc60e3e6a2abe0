"""Per-instance cost of an idle agent: resident memory and heartbeat traffic.

    .venv/bin/python bench/agent_footprint.py [--instances 3] [--window-s 10] [--heartbeat-s 2]

Starts a private nats-server, N `natsfleet agent run echo` processes at once
(the built-in echo agent, default config but for the heartbeat interval),
times each one's start to its Hello, lets them settle, then reads each
process's RSS from /proc and counts the bytes of every heartbeat on the bus
during the window.
"""

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from natsfleet.bus import Bus, BusConfig
from natsfleet.process import NatsServer

# NATS framing per heartbeat besides payload and headers: "HPUB <subject> <hlen> <len>\r\n".
_HPUB_OVERHEAD = len("HPUB  000 0000\r\n\r\n")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def main(instances: int, window_s: float, heartbeat_s: float) -> None:
    store = Path(tempfile.mkdtemp(prefix="footprint-"))
    async with NatsServer(store_dir=store) as server:
        config = BusConfig(url=server.url, prefix="footprint")
        async with Bus(config, role="bench", instance="0") as bus:
            await bus.provision()
            payload = {"bytes": 0, "wire": 0, "count": 0}
            hello_at: dict[str, float] = {}

            async def on_msg(msg: object) -> None:
                data = msg.data  # type: ignore[attr-defined]
                headers = msg.header or {}  # type: ignore[attr-defined]
                header_bytes = 12 + sum(len(k) + len(v) + 4 for k, v in headers.items())
                subject = msg.subject  # type: ignore[attr-defined]
                if subject.endswith(".hello"):
                    hello_at.setdefault(subject.split(".")[-2], time.monotonic())
                payload["count"] += 1
                payload["bytes"] += len(data)
                payload["wire"] += len(data) + header_bytes + len(subject) + _HPUB_OVERHEAD

            await bus.nc.subscribe(bus.subjects.announcements(), cb=on_msg)
            procs = []
            spawned = time.monotonic()
            for i in range(instances):
                procs.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-m",
                        "natsfleet.cli.main",
                        "agent",
                        "run",
                        "echo",
                        "--nats",
                        server.url,
                        "--prefix",
                        "footprint",
                        "--instance",
                        f"echo-{i}",
                        "--heartbeat-s",
                        str(heartbeat_s),
                        stdout=asyncio.subprocess.DEVNULL,
                        stderr=asyncio.subprocess.DEVNULL,
                    )
                )
            try:
                await asyncio.sleep(3.0)  # start-up and settling, not measured
                for key in payload:
                    payload[key] = 0
                started = time.monotonic()
                await asyncio.sleep(window_s)
                elapsed = time.monotonic() - started
                seen = dict(payload)  # before shutdown's draining beats and byes
                rss = [rss_kib(p.pid) for p in procs]
            finally:
                for p in procs:
                    p.terminate()
                for p in procs:
                    await p.wait()
            per_instance = seen["count"] / instances
            print(f"instances: {instances}, heartbeat interval: {heartbeat_s} s")
            startup = [
                hello_at[f"echo-{i}"] - spawned for i in range(instances) if f"echo-{i}" in hello_at
            ]
            print(f"process start to Hello: {min(startup):.2f}-{max(startup):.2f} s")
            print(f"RSS per idle instance: {sum(rss) / len(rss) / 1024:.1f} MiB ({rss} KiB)")
            print(
                f"heartbeats per instance: {per_instance / elapsed:.2f}/s, "
                f"{seen['bytes'] / max(seen['count'], 1):.0f} B payload each"
            )
            print(
                f"traffic per instance: {seen['bytes'] / instances / elapsed:.1f} B/s payload, "
                f"~{seen['wire'] / instances / elapsed:.1f} B/s on the wire"
            )
    shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--heartbeat-s", type=float, default=2.0)
    args = parser.parse_args()
    asyncio.run(main(args.instances, args.window_s, args.heartbeat_s))
