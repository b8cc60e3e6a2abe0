"""No-op tasks through the full path versus raw nats-py request/reply, every process separate.

    .venv/bin/python bench/dispatch.py [--tasks 3000] [--inflight 200] [--seq 300]
                                       [--agent runtime|mini] [--server-procs N]
                                       [--profile FILE] [--profile-agent FILE]
                                       [--transport auto|fast|public] [--fsync]
                                       [--against REV]

Starts a nats-server (file store, temp dir), one supervisor, two agent
instances (capacity 100 each: bench/noop_agent.py on the real agent runtime,
or with `--agent mini` the tests' mini agent) and, for the baseline, a raw
nats-py echo responder process. Prints tasks/s with N in flight, p50/p99 of
sequential submit->result latency, the ratios to raw request/reply, and the
CPU time each process spent per task during the throughput phase (Linux).
nats-server gets the GOMAXPROCS `natsfleet up` gives an embedded server that
shares its machine with the fleet (half the CPUs); `--server-procs 0` leaves
Go's default. `--transport public` runs every natsfleet process on nats-py's
public API instead of the fast transport (docs/architecture.md, "The
transport seam"), to see what the fast one is worth. `--fsync` measures a
second time on a server with `sync_interval: always`, the durability every
generated deploy config asks for, and prints it first (the durable figures
are the headline: docs/performance.md), then the lazy ones.

Every run also counts the JetStream stores per task of the throughput phase,
per stream, from the server's own stream state (`last_seq` moved: messages
stored; `messages` moved less: messages removed, by work-queue acks, KV
history or TTL), the figure that sets the rate under fsync.

`--against REV` runs the supervisor and agents of git revision REV (a
temporary `git worktree` of it; a directory holding a `natsfleet` symlink to
that worktree is put first on their PYTHONPATH, and the bench prints the
`natsfleet.supervisor.__file__` such a process imports) in the same session, alternately
with this tree's, and prints before/after ratios: the previous design against
this one, with the same driver, server and machine moment.
"""

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import nats
import nats.errors

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient
from natsfleet.process import NatsServer, shared_gomaxprocs
from natsfleet.process.loop import loop_factory
from natsfleet.protocols import Codec, TaskEvent, TaskState, is_terminal, new_task_id

ROOT = Path(__file__).resolve().parents[1]
RESPONDER = """
import asyncio, sys, nats
async def main():
    nc = await nats.connect(sys.argv[1])
    async def cb(msg):
        await msg.respond(msg.data)
    await nc.subscribe("bench.echo", cb=cb)
    await asyncio.Event().wait()
from natsfleet.process.loop import loop_factory
with asyncio.Runner(loop_factory=loop_factory()) as runner:
    runner.run(main())
"""


async def spawn(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU used by each named process between `start()` and `stop()`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        now = {name: cpu_s(pid) for name, pid in self.pids.items()}
        now["driver"] = time.process_time()
        return now

    def start(self) -> None:
        self.before = self._now()

    def stop(self) -> None:
        after = self._now()
        self.used = {name: after[name] - self.before[name] for name in after}

    def per_op_us(self, ops: int) -> str:
        return ", ".join(f"{name} {1e6 * s / ops:.0f}" for name, s in self.used.items())


class StreamCounts(NamedTuple):
    last_seq: int
    messages: int


async def stream_counts(url: str) -> dict[str, StreamCounts]:
    """Every stream's last sequence and message count, as the server reports them."""
    nc = await nats.connect(url)
    try:
        infos = await nc.jetstream().streams_info()
    finally:
        await nc.close()
    return {i.config.name or "": StreamCounts(i.state.last_seq, i.state.messages) for i in infos}


def stores_per_task(
    before: dict[str, StreamCounts], after: dict[str, StreamCounts], tasks: int
) -> tuple[float, str]:
    """Stores per task in all (what fsyncs), and per stream: `stored (-removed)`."""
    parts, total = [], 0
    for name, now in sorted(after.items()):
        then = before.get(name, StreamCounts(0, 0))
        stored = now.last_seq - then.last_seq
        removed = stored - (now.messages - then.messages)
        if stored >= tasks / 100 or removed >= tasks / 100:  # not lease renewals
            total += stored
            parts.append(
                f"{name.removeprefix('bench_')} {stored / tasks:.2f} (-{removed / tasks:.2f})"
            )
    return total / tasks, ", ".join(parts)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def in_flight(one: Callable[[], Awaitable[None]], total: int, inflight: int) -> None:
    """`total` calls of `one`, `inflight` at a time: that many workers, each
    starting the next call as soon as its last one ended (no task per call)."""
    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await one()

    async with asyncio.timeout(max(60.0, total / 100)):
        await asyncio.gather(*(worker() for _ in range(min(inflight, total))))


async def raw_bench(
    url: str, total: int, inflight: int, seq: int, meter: CpuMeter
) -> tuple[float, list[float]]:
    nc = await nats.connect(url)
    async with asyncio.timeout(60):  # a loaded machine starts the responder late
        while True:
            try:
                await nc.request("bench.echo", b"x", timeout=5)
                break
            except nats.errors.NoRespondersError:
                await asyncio.sleep(0.1)
    for _ in range(50):
        await nc.request("bench.echo", b"x", timeout=5)
    lat = []
    for _ in range(seq):
        t = time.perf_counter()
        await nc.request("bench.echo", b"x", timeout=5)
        lat.append((time.perf_counter() - t) * 1000)

    async def one() -> None:
        await nc.request("bench.echo", b"x", timeout=10)

    meter.start()
    t = time.perf_counter()
    await in_flight(one, total, inflight)
    rate = total / (time.perf_counter() - t)
    meter.stop()
    await nc.close()
    return rate, lat


class Waiter:
    """One live subscription to every task's events (not a consumer per task)."""

    def __init__(self, client: FleetClient) -> None:
        self.client = client
        self.futures: dict[str, asyncio.Future[TaskEvent]] = {}

    async def start(self) -> None:
        bus = self.client.bus

        async def on_event(event: TaskEvent, _: object) -> None:
            future = self.futures.get(event.task_id)
            if future is not None and is_terminal(event.state) and not future.done():
                future.set_result(event)

        await bus.subscribe(bus.subjects.all_events(), Codec[TaskEvent](TaskEvent), on_event)

    async def run(self) -> TaskEvent:
        task_id = new_task_id()
        future: asyncio.Future[TaskEvent] = asyncio.get_running_loop().create_future()
        self.futures[task_id] = future
        await self.client.submit("echo", {}, task_id=task_id)
        try:
            return await future  # the phase as a whole has a deadline
        finally:
            del self.futures[task_id]


async def fleet_bench(
    client: FleetClient, total: int, inflight: int, seq: int, meter: CpuMeter, url: str
) -> tuple[float, list[float], tuple[float, str]]:
    waiter = Waiter(client)
    await waiter.start()
    lat = []
    async with asyncio.timeout(60 + seq / 10):
        for _ in range(20):
            await waiter.run()
        for _ in range(seq):
            t = time.perf_counter()
            event = await waiter.run()
            assert event.state == TaskState.COMPLETED
            lat.append((time.perf_counter() - t) * 1000)

    async def one() -> None:
        event = await waiter.run()
        assert event.state == TaskState.COMPLETED

    before = await stream_counts(url)
    meter.start()
    t = time.perf_counter()
    await in_flight(one, total, inflight)
    rate = total / (time.perf_counter() - t)
    meter.stop()
    return rate, lat, stores_per_task(before, await stream_counts(url), total)


class Figures(NamedTuple):
    raw_rate: float
    raw_lat: list[float]
    raw_cpu: str
    rate: float
    lat: list[float]
    cpu: str
    transport: str
    stores: tuple[float, str]


async def run(args: argparse.Namespace, *, fsync: bool, source: Path | None = None) -> Figures:
    """One measurement: a fresh server (fsync on every write when `fsync`),
    supervisor, agents and responder; the raw baseline, then the full path.
    `source`: a directory whose `natsfleet` the supervisor and agents import
    (another revision's, `--against`); None: this tree's."""
    procs: list[asyncio.subprocess.Process] = []
    with tempfile.TemporaryDirectory() as tmp:
        gomaxprocs = args.server_procs or None
        store = Path(tmp) / "js"
        config_file = None
        if fsync:  # what every generated deploy config sets (deploy/targets/natsconf.py)
            config_file = Path(tmp) / "nats.conf"
            # The store directory stays on the command line (-sd): once only.
            config_file.write_text("jetstream {\n  sync_interval: always\n}\n")
        async with NatsServer(
            store_dir=store, gomaxprocs=gomaxprocs, config_file=config_file
        ) as server:
            url, prefix = server.url, "bench"
            cfg = json.dumps({"supervisor_id": "bench-sup", "registry_warmup_s": 0.3})
            fleet_env = os.environ | {"PYTHONPATH": str(ROOT / "bench")}
            if source is not None:
                paths = (source, source / "natsfleet" / "bench")
                fleet_env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
            try:
                profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
                procs.append(await spawn(*profile, "-m", "natsfleet.cli.main", "supervisor",
                    "--nats", url, "--prefix", prefix, "--config-json", cfg,
                    env=fleet_env))  # fmt: skip
                for name in ("b1", "b2"):
                    if args.agent == "mini":
                        tree = ROOT if source is None else source / "natsfleet"
                        mini = str(tree / "tests/supervisor/mini_agent.py")
                        procs.append(await spawn(mini, "--url", url, "--prefix", prefix,
                                                 "--instance", name, "--capacity", "100",
                                                 "--hb", "0.5", env=fleet_env))  # fmt: skip
                    else:
                        agent_profile = (
                            ["-m", "cProfile", "-o", args.profile_agent]
                            if args.profile_agent and name == "b1"
                            else []
                        )
                        procs.append(await spawn(*agent_profile, "-m", "natsfleet.cli.main",
                                                 "agent", "run",
                                                 "noop_agent:Noop", "--nats", url, "--prefix",
                                                 prefix, "--instance", name,
                                                 env=fleet_env))  # fmt: skip
                procs.append(await spawn("-c", RESPONDER, url))
                config = BusConfig(url=url, prefix=prefix, transport=args.transport)
                async with Bus(config, role="bench") as bus:
                    await bus.provision()
                    client = FleetClient(bus)
                    transport_kind = bus.transport.kind
                    await asyncio.sleep(1.5)  # let the processes start (bench only)
                    server_pid = server.pid or 0
                    raw_meter = CpuMeter({"nats-server": server_pid, "responder": procs[3].pid})
                    raw_rate, raw_lat = await raw_bench(
                        url, args.tasks, args.inflight, args.seq, raw_meter
                    )
                    names = ("supervisor", "agent b1", "agent b2")
                    meter = CpuMeter({"nats-server": server_pid} | {
                        name: proc.pid for name, proc in zip(names, procs, strict=False)
                    })  # fmt: skip
                    rate, lat, stores = await fleet_bench(
                        client, args.tasks, args.inflight, args.seq, meter, url
                    )
            finally:
                # SIGTERM first: the supervisor exits cleanly (and writes its profile).
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    try:
                        await asyncio.wait_for(proc.wait(), 10)
                    except TimeoutError:
                        proc.kill()
                        await proc.wait()
    return Figures(
        raw_rate, raw_lat, raw_meter.per_op_us(args.tasks),
        rate, lat, meter.per_op_us(args.tasks), transport_kind, stores,
    )  # fmt: skip


def report(title: str, f: Figures) -> None:
    p50, p99 = statistics.median(f.lat), pct(f.lat, 0.99)
    raw50, raw99 = statistics.median(f.raw_lat), pct(f.raw_lat, 0.99)
    print(f"-- {title}")
    print(f"raw nats-py request/reply: {f.raw_rate:8.0f} req/s  "
          f"p50 {raw50:.3f} ms  p99 {raw99:.3f} ms")  # fmt: skip
    print(f"natsfleet task (full path): {f.rate:8.0f} tasks/s p50 {p50:.3f} ms  p99 {p99:.3f} ms")
    print(f"ratios: throughput raw/natsfleet {f.raw_rate / f.rate:.1f}x, "
          f"p50 natsfleet/raw {p50 / raw50:.1f}x")  # fmt: skip
    print(f"CPU us per request (raw):  {f.raw_cpu}")
    print(f"CPU us per task (natsfleet): {f.cpu}")
    print(f"JetStream stores per task: {f.stores[0]:.2f} ({f.stores[1]})")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--inflight", type=int, default=200)
    parser.add_argument("--seq", type=int, default=300)
    parser.add_argument(
        "--agent",
        choices=("runtime", "mini"),
        default="runtime",
        help="agents on the real runtime (bench/noop_agent.py) or tests' mini agent",
    )
    parser.add_argument(
        "--server-procs",
        type=int,
        default=shared_gomaxprocs(),
        help="GOMAXPROCS of nats-server: by default what `natsfleet up` gives it on a machine "
        "shared with the fleet (half the CPUs); 0 leaves Go's default (all of them)",
    )
    parser.add_argument(
        "--transport",
        choices=("auto", "fast", "public"),
        default="auto",
        help="the transport of every natsfleet process (NATSFLEET_TRANSPORT)",
    )
    parser.add_argument(
        "--fsync",
        action="store_true",
        help="also measure on a server with `sync_interval: always` (what deploy configs "
        "set: acknowledged writes survive power loss) and print both",
    )
    parser.add_argument(
        "--against",
        default="",
        metavar="REV",
        help="also run the supervisor and agents of git revision REV (e.g. the previous "
        "design) in the same session, alternately with this tree's, and print the ratios",
    )
    parser.add_argument("--profile", default="", help="cProfile the supervisor into this file")
    parser.add_argument("--profile-agent", default="", help="cProfile agent b1 into this file")
    args = parser.parse_args()
    os.environ["NATSFLEET_TRANSPORT"] = args.transport  # the supervisor's and agents' too
    modes = [True, False] if args.fsync else [False]  # the durable figures first
    titles = {
        True: "sync_interval: always (fsync on every write, as deployed)",
        False: "lazy fsync (nats-server's default)",
    }
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(revision(args.against)) if args.against else None
        results: dict[bool, Figures] = {}
        for fsync in modes:
            if source is not None:
                before = await run(args, fsync=fsync, source=source)
                report(f"{titles[fsync]}, before: {args.against}", before)
            results[fsync] = after = await run(args, fsync=fsync)
            report(f"{titles[fsync]}, this tree" if source else titles[fsync], after)
            if source is not None:
                p50s = statistics.median(after.lat), statistics.median(before.lat)
                print(
                    f"after/before ({args.against}): throughput {after.rate / before.rate:.2f}x, "
                    f"p50 {p50s[0] / p50s[1]:.2f}x, stores per task "
                    f"{after.stores[0]:.2f} vs {before.stores[0]:.2f}"
                )
    if args.fsync:
        durable, lazy = results[True], results[False]
        print(
            f"durable/lazy: throughput {durable.rate / lazy.rate:.2f}x, "
            f"p50 {statistics.median(durable.lat) / statistics.median(lazy.lat):.2f}x"
        )
    procs_text = args.server_procs or "Go's default (all CPUs)"
    print(f"nats-server GOMAXPROCS: {procs_text}; Python {sys.version.split()[0]}; "
          f"transport {results[False].transport}")  # fmt: skip


@contextlib.contextmanager
def revision(rev: str) -> Iterator[Path]:
    """A directory whose `natsfleet` is a temporary worktree of `rev` (the repository
    root is the package directory); removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="natsfleet-rev-"))
    tree = tmp / "tree"
    git = ["git", "-C", str(ROOT)]
    subprocess.run([*git, "worktree", "add", "--detach", "--quiet", str(tree), rev], check=True)
    try:
        (tmp / "natsfleet").symlink_to(tree, target_is_directory=True)
        where = subprocess.run(
            [sys.executable, "-c", "import natsfleet.supervisor as m; print(m.__file__)"],
            env=os.environ | {"PYTHONPATH": str(tmp)}, check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        commit = subprocess.run([*git, "rev-parse", "--short", rev], check=True,
                                capture_output=True, text=True).stdout.strip()  # fmt: skip
        print(f"--against {rev} ({commit}): its processes import natsfleet from {where}")
        if not where.startswith(str(tmp)):
            raise SystemExit(f"--against: a child imports {where}, not the worktree of {rev}")
        yield tmp
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    # Every process on the loop natsfleet's processes use (uvloop when
    # installed): the driver, the raw responder, the supervisor and agents.
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())
