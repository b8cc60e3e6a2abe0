"""Issue 19 item 4: agents that claim tasks from the work queue, measured
against raw nats-py and today's natsfleet in one run, on one nats-server.

    .venv/bin/python bench/claim_study.py [--tasks 3000] [--inflight 200] [--seq 300]
                                          [--rounds 1] [--fsync] [--server-procs N]

One nats-server (file store, temp dir; GOMAXPROCS as bench/dispatch.py gives
it) serves five designs in turn, each with its own processes, started for its
phase and stopped after it:

1. raw nats-py request/reply (bench/dispatch.py's echo responder and driver);
2. natsfleet today: one supervisor, two agent instances of capacity 100
   (bench/noop_agent.py on the real runtime), bench/dispatch.py's driver;
3. the claim design without a fence (bench/claim_proto.py): two agent
   processes pull from a work queue (credit 100 each), publish the result to
   a stream, ack;
4. the claim design with the CAS fence: claim and completion are
   compare-and-sets on the task's KV record, and a watcher process re-queues
   expired claims;
5. the same fence with the queue and the records in one stream, one subject
   per state (bench/claim_stream.py): the re-queue is one write.

Prints tasks/s with N in flight, p50/p99 of sequential submit -> result, the
CPU each process spent per task in the throughput phase, and the ratios to
(1) and (2). `--rounds N` repeats the five phases N times, alternating, so a
busy moment of the machine hits every design alike. `--fsync` measures again
on a server with `sync_interval: always`. Then it runs the prototypes' fault
check (both layouts) on the same server: a holder that stalls past its claim deadline must
have its late result refused while another agent completes the task once.
"""

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nats
from claim_checks import FaultReport, fault_check, fault_check_stream, unfenced_check
from claim_proto import Names, Waiter, provision
from claim_stream import StreamNames, StreamWaiter, provision_stream
from dispatch import RESPONDER, ROOT, CpuMeter, fleet_bench, in_flight, pct, raw_bench, spawn

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient
from natsfleet.process import NatsServer, shared_gomaxprocs
from natsfleet.process.loop import loop_factory

PROTO = str(Path(__file__).resolve().parent / "claim_proto.py")
DESIGNS = (
    "raw request/reply",
    "natsfleet today",
    "claim, no fence",
    "claim + CAS fence",
    "claim + fence, 1 stream",
)


@dataclass
class Phase:
    design: str
    rate: float
    lat: list[float]
    cpu: dict[str, float]  # process -> CPU seconds in the throughput phase

    @property
    def p50(self) -> float:
        return statistics.median(self.lat)

    @property
    def p99(self) -> float:
        return pct(self.lat, 0.99)

    def cpu_us(self, tasks: int) -> str:
        parts = [f"{name} {1e6 * s / tasks:.0f}" for name, s in self.cpu.items()]
        return f"total {1e6 * sum(self.cpu.values()) / tasks:.0f}: " + ", ".join(parts)


async def stop(procs: list[asyncio.subprocess.Process]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def until_agents(client: FleetClient, count: int, timeout_s: float = 60) -> None:
    """Until the supervisor answers and knows `count` live instances (a loaded
    machine starts them late; a task submitted before that is rejected)."""
    async with asyncio.timeout(timeout_s):
        while True:
            with contextlib.suppress(Exception):  # no supervisor yet, or it times out
                infos = await client.agents(timeout_s=1.0)
                if sum(1 for info in infos if info.alive) >= count:
                    return
            await asyncio.sleep(0.1)


async def raw_phase(url: str, server_pid: int, args: argparse.Namespace) -> Phase:
    procs = [await spawn("-c", RESPONDER, url)]
    try:
        meter = CpuMeter({"nats-server": server_pid, "responder": procs[0].pid})
        rate, lat = await raw_bench(url, args.tasks, args.inflight, args.seq, meter)
    finally:
        await stop(procs)
    return Phase(DESIGNS[0], rate, lat, meter.used)


async def fleet_phase(url: str, server_pid: int, args: argparse.Namespace, prefix: str) -> Phase:
    cfg = json.dumps({"supervisor_id": f"{prefix}-sup", "registry_warmup_s": 0.3})
    env = os.environ | {"PYTHONPATH": str(ROOT / "bench")}
    procs = [await spawn("-m", "natsfleet.cli.main", "supervisor", "--nats", url,
                         "--prefix", prefix, "--config-json", cfg)]  # fmt: skip
    try:
        for name in ("b1", "b2"):
            procs.append(await spawn("-m", "natsfleet.cli.main", "agent", "run",
                                     "noop_agent:Noop", "--nats", url, "--prefix", prefix,
                                     "--instance", name, env=env))  # fmt: skip
        async with Bus(BusConfig(url=url, prefix=prefix), role="bench") as bus:
            await bus.provision()
            client = FleetClient(bus)
            await until_agents(client, 2)
            names = ("supervisor", "agent b1", "agent b2")
            meter = CpuMeter(
                {"nats-server": server_pid} | {n: p.pid for n, p in zip(names, procs, strict=True)}
            )
            rate, lat, _stores = await fleet_bench(
                client, args.tasks, args.inflight, args.seq, meter, url
            )
    finally:
        await stop(procs)
    return Phase(DESIGNS[1], rate, lat, meter.used)


async def claim_phase(
    url: str, server_pid: int, args: argparse.Namespace, prefix: str, *, design: int
) -> Phase:
    """Design 2 (no fence), 3 (CAS fence, KV) or 4 (fence, one stream)."""
    fenced = design >= 3
    nc = await nats.connect(url)
    procs: list[asyncio.subprocess.Process] = []
    try:
        waiter: Waiter | StreamWaiter
        if design == 4:
            await provision_stream(nc.jetstream(), StreamNames(prefix))
            waiter = StreamWaiter(nc, StreamNames(prefix))
            flags = ["--layout", "stream"]
        else:
            await provision(nc.jetstream(), Names(prefix))
            waiter = Waiter(nc, Names(prefix), fenced=fenced)
            flags = ["--fenced"] if fenced else []
        for name in ("c1", "c2"):
            procs.append(await spawn(PROTO, "agent", "--url", url, "--prefix", prefix,
                                     "--instance", name, "--capacity", "100", *flags))  # fmt: skip
        if fenced:
            procs.append(await spawn(PROTO, "watcher", "--url", url, "--prefix", prefix, *flags))
        await waiter.start()
        lat = []
        async with asyncio.timeout(60 + args.seq / 10):
            for _ in range(20):  # also waits for the agents to start pulling
                await waiter.run()
            for _ in range(args.seq):
                t = time.perf_counter()
                await waiter.run()
                lat.append((time.perf_counter() - t) * 1000)

        async def one() -> None:
            await waiter.run()

        roles = ["agent c1", "agent c2"] + (["watcher"] if fenced else [])
        meter = CpuMeter(
            {"nats-server": server_pid} | {n: p.pid for n, p in zip(roles, procs, strict=True)}
        )
        meter.start()
        t = time.perf_counter()
        await in_flight(one, args.tasks, args.inflight)
        rate = args.tasks / (time.perf_counter() - t)
        meter.stop()
        for proc in procs:
            if proc.returncode is not None:
                raise RuntimeError(f"a prototype process exited with {proc.returncode}")
    finally:
        await stop(procs)
        await nc.close()
    return Phase(DESIGNS[design], rate, lat, meter.used)


def report(phases: list[Phase], tasks: int) -> None:
    raw, fleet = phases[0], phases[1]
    print(f"{'design':<24} {'tasks/s':>8} {'p50 ms':>7} {'p99 ms':>7}  "
          f"{'tput/raw':>8} {'p50/raw':>7}  {'tput/nf':>7} {'p50/nf':>6}")  # fmt: skip
    for p in phases:
        print(f"{p.design:<24} {p.rate:8.0f} {p.p50:7.3f} {p.p99:7.3f}  "
              f"{p.rate / raw.rate:8.2f} {p.p50 / raw.p50:7.2f}  "
              f"{p.rate / fleet.rate:7.2f} {p.p50 / fleet.p50:6.2f}")  # fmt: skip
    for p in phases:
        print(f"  CPU us per task, {p.design}: {p.cpu_us(tasks)}")


async def measure(args: argparse.Namespace, *, fsync: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config_file = None
        if fsync:  # what every generated deploy config sets (deploy/targets/natsconf.py)
            config_file = Path(tmp) / "nats.conf"
            config_file.write_text("jetstream {\n  sync_interval: always\n}\n")
        async with NatsServer(
            store_dir=Path(tmp) / "js",
            gomaxprocs=args.server_procs or None,
            config_file=config_file,
        ) as server:
            url, pid = server.url, server.pid or 0
            title = "sync_interval: always" if fsync else "lazy fsync (nats-server's default)"
            for r in range(args.rounds):
                print(f"-- {title}, round {r + 1} of {args.rounds}", flush=True)
                phases = [
                    await raw_phase(url, pid, args),
                    await fleet_phase(url, pid, args, f"nf{r}"),
                    await claim_phase(url, pid, args, f"cu{r}", design=2),
                    await claim_phase(url, pid, args, f"cf{r}", design=3),
                    await claim_phase(url, pid, args, f"cs{r}", design=4),
                ]
                report(phases, args.tasks)
            for layout, check in (("KV", fault_check), ("1 stream", fault_check_stream)):
                t = time.perf_counter()
                fault = await check(url, f"fc{layout[0]}")
                show_fault(layout, fault, time.perf_counter() - t)
            doubled = await unfenced_check(url, "fcu")
            print(f"the same stall without the fence (design 3, redelivery after ack_wait): "
                  f"{doubled} results stored for the one task")  # fmt: skip


def show_fault(layout: str, fault: FaultReport, took_s: float) -> None:
    verdict = "HOLDS" if fault.holds else "BROKEN"
    print(f"fault check, {layout} ({took_s:.1f} s): fence {verdict}: "
          f"final record {fault.record.state} by {fault.record.holder!r} "
          f"attempt {fault.record.attempt}; completed writes stored "
          f"{fault.completed_writes}; late result refused {fault.refused}; "
          f"re-queued {fault.requeued}; completions the client heard "
          f"{fault.completions_heard}; completed writes a core subscriber of the "
          f"record's subject heard {fault.core_completed_heard}")  # fmt: skip
    if not fault.holds:
        raise SystemExit("the fence did not hold")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--inflight", type=int, default=200)
    parser.add_argument("--seq", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=1, help="the five phases, N times")
    parser.add_argument(
        "--fsync", action="store_true", help="also on a server with `sync_interval: always`"
    )
    parser.add_argument(
        "--server-procs",
        type=int,
        default=shared_gomaxprocs(),
        help="GOMAXPROCS of nats-server (as bench/dispatch.py); 0 leaves Go's default",
    )
    args = parser.parse_args()
    await measure(args, fsync=False)
    if args.fsync:
        await measure(args, fsync=True)
    procs_text = args.server_procs or "Go's default (all CPUs)"
    print(f"nats-server GOMAXPROCS: {procs_text}; Python {sys.version.split()[0]}")


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())
