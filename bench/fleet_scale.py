"""The supervisor beside many idle instances: its idle CPU, and dispatch with them there.

    .venv/bin/python bench/fleet_scale.py [--instances 0,1000,5000,10000] [--window-s 10]
                                          [--tasks 3000] [--inflight 200] [--seq 300]
                                          [--against REV] [--against-instances 0,1000]
                                          [--profile-dir DIR]

For each N: a fresh nats-server (file store), one supervisor, two no-op
agents on the real runtime (bench/noop_agent.py, capacity 100 each) and N
idle instances simulated by bench/fleet_sim.py (2,500 per process, each
speaking the real protocol: Hello, a heartbeat every 2 s, Rollcall, Bye;
they offer a skill nobody submits). Once the supervisor knows all N + 2
(`ctl.agents`), and after a settling pause, the supervisor's CPU is read
from /proc over `--window-s` (% of one core), then bench/dispatch.py's
throughput phase (`--inflight` tasks in flight) and sequential p50/p99 run
through it. Each row is also given as a ratio to N = 0 of the same run.

`--against REV` runs the supervisor and the agents of commit REV too (a
temporary git worktree, first on PYTHONPATH through a directory holding a
`natsfleet` symlink: the repository root is the package), for the N in
`--against-instances` (the old pick is O(N) per task and its persistence
O(N) per heartbeat: large N would only measure a saturated process),
alternating with this tree's run for each N, so the rows compare like with
like on a noisy machine.
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import dispatch
from dispatch import RESPONDER, CpuMeter, cpu_s, fleet_bench, pct, raw_bench

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient
from natsfleet.process import NatsServer, shared_gomaxprocs
from natsfleet.process.loop import loop_factory

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PER_SIM = 2500


class Row(NamedTuple):
    code: str
    instances: int
    idle_pct: float  # supervisor CPU while idle, % of one core
    server_idle_pct: float
    hellos_s: float  # Hellos per second in the idle window (rollcall answers)
    rate: float
    p50: float
    p99: float
    sup_us: float  # supervisor CPU per task in the throughput phase
    cpu: str  # every process's CPU per task in that phase, µs


async def spawn(
    *args: str, env: dict[str, str], log: Path | None = None
) -> asyncio.subprocess.Process:
    if log is None:
        return await asyncio.create_subprocess_exec(
            sys.executable, *args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
    with log.open("ab") as out:  # the child keeps its own descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable, *args, stdout=out, stderr=out, env=env
        )


async def known(client: FleetClient) -> int:
    try:
        return (await client.agents_page(limit=1, timeout_s=5)).total
    except Exception:
        return -1


async def measure(
    args: argparse.Namespace, code: str, code_path: str | None, instances: int, tmp: Path
) -> Row:
    """One row: a fresh server and fleet on the code at `code_path` (None: this tree)."""
    base_env = os.environ | {"PYTHONPATH": str(BENCH)}
    env = base_env
    if code_path is not None:
        env = base_env | {"PYTHONPATH": f"{code_path}{os.pathsep}{BENCH}"}
    procs: list[asyncio.subprocess.Process] = []
    store = tmp / f"js-{code}-{instances}"
    async with NatsServer(store_dir=store, gomaxprocs=args.server_procs or None) as server:
        url, prefix = server.url, "scale"
        cfg = json.dumps({"supervisor_id": "bench-sup", "registry_warmup_s": 0.3})
        try:
            profile: list[str] = []
            if args.profile_dir:
                out = Path(args.profile_dir) / f"supervisor-{code}-{instances}.prof"
                profile = ["-m", "cProfile", "-o", str(out)]
            log = Path(args.log_dir) / f"sup-{code}-{instances}.log" if args.log_dir else None
            supervisor = await spawn(*profile, "-m", "natsfleet.cli.main", "supervisor",
                "--nats", url, "--prefix", prefix, "--config-json", cfg, env=env,
                log=log)  # fmt: skip
            procs.append(supervisor)
            for name in ("b1", "b2"):
                procs.append(await spawn("-m", "natsfleet.cli.main", "agent", "run",
                    "noop_agent:Noop", "--nats", url, "--prefix", prefix, "--instance", name,
                    env=env))  # fmt: skip
            for first in range(0, instances, PER_SIM):
                count = min(PER_SIM, instances - first)
                procs.append(await spawn(str(BENCH / "fleet_sim.py"), "--url", url,
                    "--prefix", prefix, "--first", str(first), "--count", str(count),
                    "--heartbeat-s", str(args.heartbeat_s), env=base_env))  # fmt: skip
            async with Bus(BusConfig(url=url, prefix=prefix), role="bench") as bus:
                await bus.provision()
                client = FleetClient(bus)
                started = time.monotonic()
                while await known(client) < instances + 2:
                    if time.monotonic() - started > args.join_timeout_s:
                        raise TimeoutError(
                            f"{code}: the supervisor knows {await known(client)} of "
                            f"{instances + 2} instances after {args.join_timeout_s} s"
                        )
                    await asyncio.sleep(0.5)
                await asyncio.sleep(args.settle_s)
                hellos = 0

                async def on_hello(_: object) -> None:
                    nonlocal hellos
                    hellos += 1

                await bus.nc.subscribe(f"{prefix}.agent.*.*.hello", cb=on_hello)
                server_pid = server.pid or 0
                before = (cpu_s(supervisor.pid), cpu_s(server_pid), time.monotonic())
                await asyncio.sleep(args.window_s)
                after = (cpu_s(supervisor.pid), cpu_s(server_pid), time.monotonic())
                wall = after[2] - before[2]
                idle_pct = 100 * (after[0] - before[0]) / wall
                server_pct = 100 * (after[1] - before[1]) / wall
                hellos_s = hellos / wall
                pids = {"supervisor": supervisor.pid, "nats-server": server_pid,
                        "agent b1": procs[1].pid, "agent b2": procs[2].pid}  # fmt: skip
                pids |= {f"sim {n}": proc.pid for n, proc in enumerate(procs[3:])}
                meter = CpuMeter(pids)
                rate, lat, _stores = await fleet_bench(
                    client, args.tasks, args.inflight, args.seq, meter, url
                )
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
    shutil.rmtree(store, ignore_errors=True)
    sup_us = 1e6 * meter.used["supervisor"] / args.tasks
    return Row(code, instances, idle_pct, server_pct, hellos_s, rate, statistics.median(lat),
               pct(lat, 0.99), sup_us, meter.per_op_us(args.tasks))  # fmt: skip


def remove_checkout(tmp: Path) -> None:
    tree = str(tmp / "against-tree")
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", tree], check=False)


def checkout(rev: str, tmp: Path) -> tuple[str, str]:
    """A worktree of `rev` and a directory whose `natsfleet` is it: (label, path)."""
    tree = tmp / "against-tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), rev],
                   check=True)  # fmt: skip
    label = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                           check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    path = tmp / "against-path"
    path.mkdir()
    (path / "natsfleet").symlink_to(tree, target_is_directory=True)
    return label, str(path)


def header() -> None:
    print(f"{'code':>9} {'N':>6} {'sup idle %':>10} {'server idle %':>13} {'Hello/s':>7} "
          f"{'tasks/s':>8} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'sup us/task':>11}   vs N=0 (same code)")  # fmt: skip


async def raw_baseline(args: argparse.Namespace, tmp: Path) -> tuple[float, float]:
    """Raw nats-py request/reply on a fresh server of the same kind, with the
    same load shape: (requests/s, p50 ms), the floor every row is set against."""
    async with NatsServer(store_dir=tmp / "js-raw", gomaxprocs=args.server_procs or None) as server:
        responder = await dispatch.spawn("-c", RESPONDER, server.url)
        try:
            meter = CpuMeter({"nats-server": server.pid or 0, "responder": responder.pid})
            rate, lat = await raw_bench(server.url, args.tasks, args.inflight, args.seq, meter)
        finally:
            responder.terminate()
            await responder.wait()
    return rate, pct(lat, 0.5)


def line(row: Row, zero: Row | None) -> None:
    ratio = ""
    if zero is not None and row is not zero:
        ratio = (f"tput {row.rate / zero.rate:.2f}x, p99 {row.p99 / zero.p99:.2f}x, "
                 f"sup us/task {row.sup_us / zero.sup_us:.2f}x")  # fmt: skip
    print(f"{row.code:>9} {row.instances:>6} {row.idle_pct:>10.1f} {row.server_idle_pct:>13.1f} "
          f"{row.hellos_s:>7.0f} {row.rate:>8.0f} {row.p50:>7.2f} {row.p99:>7.2f} "
          f"{row.sup_us:>11.0f}   {ratio}",
          flush=True)  # fmt: skip
    print(f"{'':>17} CPU µs per task: {row.cpu}", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", default="0,1000,5000,10000")
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--settle-s", type=float, default=3.0)
    parser.add_argument("--join-timeout-s", type=float, default=120.0)
    parser.add_argument("--heartbeat-s", type=float, default=2.0)
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--inflight", type=int, default=200)
    parser.add_argument("--seq", type=int, default=300)
    parser.add_argument("--against", default="", help="also run this commit's supervisor")
    parser.add_argument("--against-instances", default="0,1000")
    parser.add_argument("--server-procs", type=int, default=shared_gomaxprocs())
    parser.add_argument("--profile-dir", default="", help="cProfile each supervisor here")
    parser.add_argument("--log-dir", default="", help="keep each supervisor's log here")
    args = parser.parse_args()
    sizes = [int(n) for n in args.instances.split(",")]
    against_sizes = {int(n) for n in args.against_instances.split(",")} if args.against else set()
    with tempfile.TemporaryDirectory(prefix="fleet-scale-") as tmp_name:
        tmp = Path(tmp_name)
        against: tuple[str, str] | None = checkout(args.against, tmp) if args.against else None
        try:
            raw_rate, raw_p50 = await raw_baseline(args, tmp)
            print(f"raw nats-py request/reply: {raw_rate:.0f} req/s, p50 {raw_p50:.3f} ms")
            header()
            zeros: dict[str, Row] = {}
            rows: list[Row] = []
            for n in sizes:
                runs: list[tuple[str, str | None]] = [("this", None)]
                if against is not None and n in against_sizes:
                    runs.insert(0, against)
                for code, path in runs:
                    row = await measure(args, code, path, n, tmp)
                    if n == 0:
                        zeros[code] = row
                    rows.append(row)
                    line(row, zeros.get(code))
        finally:
            if against is not None:
                remove_checkout(tmp)
    by = {(r.code, r.instances): r for r in rows}
    if against is not None:
        print("this tree against", against[0], "(same N, same run):")
        for n in sorted(against_sizes & set(sizes)):
            old, new = by.get((against[0], n)), by.get(("this", n))
            if old and new:
                print(f"  N={n}: idle CPU {old.idle_pct:.1f}% -> {new.idle_pct:.1f}%, "
                      f"tput {new.rate / old.rate:.2f}x, p99 {new.p99 / old.p99:.2f}x, "
                      f"sup us/task {old.sup_us:.0f} -> {new.sup_us:.0f}")  # fmt: skip
    print("raw nats-py against each row (same run): throughput raw/natsfleet, p50 natsfleet/raw:")
    for row in rows:
        print(f"  {row.code:>9} N={row.instances}: {raw_rate / row.rate:.1f}x, "
              f"{row.p50 / raw_p50:.1f}x")  # fmt: skip
    print(f"heartbeat every {args.heartbeat_s} s; nats-server GOMAXPROCS "
          f"{args.server_procs or 'all'}; Python {sys.version.split()[0]}")  # fmt: skip


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())
