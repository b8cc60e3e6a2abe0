"""Chaos soak: a fleet under a fault schedule, and a checker of every task.

Shared by `tests/chaos/` (CI size) and `bench/soak.py` (manual, 5,000 tasks).
The fleet: one nats-server (file store), two supervisors, `agents` mini
agents (tests/supervisor/mini_agent.py) that record every execution in
`raw.log` and apply each task's side effect once, keyed by task id, as an
exclusively created file `effects/<task_id>` (a store that survives kill -9).

Fault schedule, while the backlog drains: every `kill_every_s` a quarter of
the agents are SIGKILLed and restarted (same instance id, new incarnation);
one agent is SIGSTOPped for `stop_s` and resumed; the active supervisor is
SIGKILLed once (the standby takes over; it is restarted as the new standby);
nats-server is restarted once (same port and file store).

The fault-free time is measured in the same run: a first backlog of
`baseline_tasks` runs with no fault, and the chaos backlog is allowed
2x its time scaled to `tasks`.
"""

import asyncio
import contextlib
import json
import random
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from nats.js.errors import KeyNotFoundError

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient
from natsfleet.process import NatsServer
from natsfleet.protocols import (
    Bucket,
    Codec,
    DeadLetter,
    Stream,
    TaskRecord,
    TaskState,
    is_terminal,
)

MINI_AGENT = Path(__file__).resolve().parents[1] / "supervisor" / "mini_agent.py"

SUPERVISOR_CONFIG: dict[str, Any] = {
    "timeouts": {
        "schedule_to_start_s": 300.0,
        "start_to_close_s": 30.0,
        "heartbeat_timeout_s": 1.5,
        "schedule_to_close_s": 600.0,
    },
    "retry": {"initial_interval_s": 0.05, "maximum_interval_s": 0.5, "maximum_attempts": 20},
    "assign_timeout_s": 1.0,
    "lease_ttl_s": 2.0,
    "ack_wait_s": 2.0,
    "registry_warmup_s": 0.5,
    "sweep_interval_s": 0.1,
}


@dataclass
class SoakConfig:
    tasks: int = 1000
    baseline_tasks: int = 250
    agents: int = 8
    capacity: int = 4
    task_s: float = 0.5
    kill_every_s: float = 2.0
    stop_s: float = 2.0
    heartbeat_s: float = 0.2
    seed: int = 1


@dataclass
class Report:
    tasks: int
    completed_once: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    not_terminal: list[str] = field(default_factory=list)
    raw_executions: int = 0
    re_executions: int = 0
    effects: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    baseline_s: float = 0.0
    baseline_tasks: int = 0
    drain_s: float = 0.0
    dlq: dict[str, int] = field(default_factory=dict)

    @property
    def fault_free_s(self) -> float:
        """The fault-free time scaled to this run's task count."""
        return self.baseline_s * self.tasks / max(1, self.baseline_tasks)

    @property
    def passed(self) -> bool:
        return (
            not self.lost
            and not self.duplicated
            and not self.not_terminal
            and self.drain_s <= 2 * self.fault_free_s
        )

    def summary(self) -> str:
        return json.dumps(
            {
                "tasks": self.tasks,
                "completed_once": self.completed_once,
                "failed": self.failed,
                "lost": len(self.lost),
                "duplicated": len(self.duplicated),
                "not_terminal": len(self.not_terminal),
                "raw_executions": self.raw_executions,
                "re_executions": self.re_executions,
                "effects": self.effects,
                "faults": dict(self.faults),
                "fault_free_s": round(self.fault_free_s, 1),
                "drain_s": round(self.drain_s, 1),
                "drain_vs_fault_free": round(self.drain_s / max(self.fault_free_s, 1e-9), 2),
                "dlq": self.dlq,
                "passed": self.passed,
            },
            indent=1,
        )


class Child:
    def __init__(self, name: str, args: list[str], log: Path) -> None:
        self.name = name
        self.args = args
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, *self.args, stdout=out, stderr=out, start_new_session=True
            )

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    async def kill(self) -> None:
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            await self.proc.wait()


class Soak:
    def __init__(self, config: SoakConfig, workdir: Path) -> None:
        self.cfg = config
        self.dir = workdir
        self.prefix = f"soak{random.Random(config.seed).randrange(16**6):06x}"
        self.server = NatsServer(store_dir=workdir / "js", log_file=workdir / "nats.log")
        self.children: list[Child] = []
        self.agents: list[Child] = []
        self.supervisors: dict[str, Child] = {}
        self.faults: Counter[str] = Counter()
        self.rng = random.Random(config.seed)
        self.bus: Bus | None = None
        self.active: str | None = None

    # -- processes ------------------------------------------------------------

    def _child(self, name: str, args: list[str]) -> Child:
        child = Child(name, args, self.dir / f"{name}.log")
        self.children.append(child)
        return child

    async def start(self) -> FleetClient:
        await self.server.start()
        self.bus = Bus(BusConfig(url=self.server.url, prefix=self.prefix), role="test")
        await self.bus.connect()
        await self.bus.provision()
        for name in ("sup-a", "sup-b"):
            await self._start_supervisor(name)
        effects = self.dir / "effects"
        effects.mkdir(exist_ok=True)
        for n in range(self.cfg.agents):
            child = self._child(
                f"agent-{n}",
                [
                    str(MINI_AGENT), "--url", self.server.url, "--prefix", self.prefix,
                    "--instance", f"agent-{n}", "--capacity", str(self.cfg.capacity),
                    "--hb", str(self.cfg.heartbeat_s),
                ],
            )  # fmt: skip
            self.agents.append(child)
            await child.start()
        client = FleetClient(self.bus)
        await self._until_agents(client, self.cfg.agents)
        return client

    async def _start_supervisor(self, name: str) -> None:
        config = json.dumps({**SUPERVISOR_CONFIG, "supervisor_id": name})
        child = self.supervisors.get(name) or self._child(
            name,
            [
                "-m", "natsfleet.cli.main", "supervisor", "--nats", self.server.url,
                "--prefix", self.prefix, "--config-json", config,
            ],
        )  # fmt: skip
        self.supervisors[name] = child
        await child.start()

    async def _until_agents(self, client: FleetClient, count: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                infos = await client.agents(timeout_s=1.0)
                if sum(1 for i in infos if i.alive) >= count:
                    return
            await asyncio.sleep(0.1)
        raise AssertionError(f"fewer than {count} agents came up in {timeout_s} s")

    async def _holder(self) -> str | None:
        assert self.bus is not None
        with contextlib.suppress(Exception):
            entry = await (await self.bus.kv(Bucket.LEASES)).get("p0")
            holder = msgspec.json.decode(entry.value or b"{}").get("holder")
            return str(holder) if holder else None
        return None

    async def stop(self) -> None:
        for child in self.children:
            await child.kill()
        if self.bus is not None:
            with contextlib.suppress(Exception):
                await self.bus.close()
        await self.server.stop()

    # -- the run --------------------------------------------------------------

    async def submit(self, client: FleetClient, count: int, tag: str) -> list[str]:
        spec = {"sleep_s": self.cfg.task_s, "effects": str(self.dir / "effects")}
        ids: list[str] = []
        for start in range(0, count, 100):
            batch = range(start, min(count, start + 100))
            ids += await asyncio.gather(
                *(client.submit("echo", {**spec, "n": f"{tag}{i}"}, queue=True) for i in batch)
            )
        return ids

    async def wait_terminal(self, ids: list[str], timeout_s: float) -> list[str]:
        """Poll STATE until every task is terminal; returns those that are not."""
        assert self.bus is not None
        pending = set(ids)
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                records = await self.records(sorted(pending))
                pending -= {r.task_id for r in records.values() if is_terminal(r.state)}
            if pending:
                await asyncio.sleep(0.2)
        return sorted(pending)

    async def records(self, ids: list[str]) -> dict[str, TaskRecord]:
        """The STATE record of each task that has one (gets in concurrent chunks)."""
        assert self.bus is not None
        kv = await self.bus.kv(Bucket.STATE)

        async def one(task_id: str) -> TaskRecord | None:
            try:
                entry = await kv.get(task_id)
            except KeyNotFoundError:
                return None
            return msgspec.json.decode(entry.value or b"", type=TaskRecord)

        found: dict[str, TaskRecord] = {}
        for start in range(0, len(ids), 200):
            chunk = await asyncio.gather(*(one(i) for i in ids[start : start + 200]))
            found.update({r.task_id: r for r in chunk if r is not None})
        return found

    async def faults_loop(self, stop: asyncio.Event) -> None:
        """The schedule: agent kills every `kill_every_s`, one SIGSTOP, one
        supervisor kill and one nats-server restart, spread over the run."""
        rounds = 0
        quarter = max(1, self.cfg.agents // 4)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.cfg.kill_every_s)
            if stop.is_set():
                return
            rounds += 1
            victims = self.rng.sample(self.agents, quarter)
            for child in victims:
                await child.kill()
                self.faults["agent_kill9"] += 1
            for child in victims:
                await child.start()
            if rounds == 1:
                await self._pause_one()
            elif rounds == 2:
                await self._kill_supervisor()
            elif rounds == 3:
                await self.server.restart()
                self.faults["nats_restart"] += 1

    async def _pause_one(self) -> None:
        child = self.rng.choice(self.agents)
        child.signal(signal.SIGSTOP)
        self.faults["agent_sigstop"] += 1
        await asyncio.sleep(self.cfg.stop_s)  # the fault itself: a stalled process
        child.signal(signal.SIGCONT)

    async def _kill_supervisor(self) -> None:
        holder = await self._holder()
        if holder not in self.supervisors:
            return
        await self.supervisors[holder].kill()
        self.faults["supervisor_kill9"] += 1
        await self._start_supervisor(holder)  # back as the standby

    async def run(self, client: FleetClient) -> Report:
        cfg = self.cfg
        report = Report(tasks=cfg.tasks, baseline_tasks=cfg.baseline_tasks)
        started = time.monotonic()
        base_ids = await self.submit(client, cfg.baseline_tasks, "b")
        left = await self.wait_terminal(base_ids, 300)
        assert not left, f"fault-free baseline did not finish: {left[:5]}"
        report.baseline_s = time.monotonic() - started
        stop = asyncio.Event()
        started = time.monotonic()
        faults = asyncio.create_task(self.faults_loop(stop))
        try:
            ids = await self.submit(client, cfg.tasks, "c")
            budget = max(60.0, 4 * report.fault_free_s)
            report.not_terminal = await self.wait_terminal(ids, budget)
            report.drain_s = time.monotonic() - started
        finally:
            stop.set()
            await faults
        report.faults = self.faults
        await self.check(ids, report)
        return report

    # -- the checker ----------------------------------------------------------

    async def check(self, ids: list[str], report: Report) -> None:
        """Classify every task: completed once, failed (reason), lost, duplicated."""
        assert self.bus is not None
        raw_log = self.dir / "effects" / "raw.log"
        raw = Counter(line.split()[0] for line in raw_log.read_text().splitlines() if line)
        effects_dir = self.dir / "effects" / "effects"
        effects = {p.name for p in effects_dir.iterdir()} if effects_dir.exists() else set()
        finals = await self._final_events()
        records = await self.records(ids)
        failed: Counter[str] = Counter()
        for task_id in ids:
            report.raw_executions += raw[task_id]
            report.re_executions += max(0, raw[task_id] - 1)
            report.effects += task_id in effects
            record = records.get(task_id)
            if record is None:
                report.lost.append(task_id)
                continue
            completed = sum(1 for a in record.history if a.outcome == "completed")
            if finals.get(task_id, 0) > 1 or completed > 1:
                report.duplicated.append(task_id)
            elif record.state == TaskState.COMPLETED:
                if task_id in effects and completed == 1:
                    report.completed_once += 1
                else:
                    report.lost.append(task_id)  # recorded, but its effect never happened
            elif record.state == TaskState.FAILED:
                reason = record.dead_letter.value if record.dead_letter else "unknown"
                failed[reason] += 1
            elif not is_terminal(record.state) and task_id not in report.not_terminal:
                report.not_terminal.append(task_id)
        report.failed = dict(failed)
        report.dlq = await self._dlq_reasons()

    async def _final_events(self) -> Counter[str]:
        """Terminal events per task in the EVENTS stream."""
        assert self.bus is not None
        stream = self.bus.subjects.stream(Stream.EVENTS)
        info = await self.bus.js.stream_info(stream)
        found: Counter[str] = Counter()
        if not info.state.messages:
            return found
        psub = await self.bus.js.pull_subscribe(self.bus.subjects.all_events(), stream=stream)
        try:
            seen = 0
            while seen < info.state.messages:
                for msg in await psub.fetch(1000, timeout=5):
                    seen += 1
                    event = msgspec.json.decode(msg.data)
                    if is_terminal(TaskState(event["state"])):
                        found[event["task_id"]] += 1
                    await msg.ack()
        finally:
            await psub.unsubscribe()
        return found

    async def _dlq_reasons(self) -> dict[str, int]:
        assert self.bus is not None
        stream = self.bus.subjects.stream(Stream.DLQ)
        info = await self.bus.js.stream_info(stream)
        reasons: Counter[str] = Counter()
        codec = Codec[DeadLetter](DeadLetter)
        for seq in (
            range(info.state.first_seq, info.state.last_seq + 1) if info.state.messages else ()
        ):
            with contextlib.suppress(Exception):
                msg = await self.bus.js.get_msg(stream, seq)
                reasons[codec.decode(msg.data or b"").reason.value] += 1
        return dict(reasons)


async def soak(config: SoakConfig, workdir: Path) -> Report:
    """Run the whole soak in `workdir`; every process is gone when it returns."""
    workdir.mkdir(parents=True, exist_ok=True)
    harness = Soak(config, workdir)
    try:
        client = await harness.start()
        return await harness.run(client)
    finally:
        await harness.stop()
