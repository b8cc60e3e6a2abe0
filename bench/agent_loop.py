"""What the loop's journal costs per turn and per tool call, against the same loop with it off.

    .venv/bin/python bench/agent_loop.py [--loops 100] [--rounds 10] [--fsync]

Starts a nats-server (file store, temp dir; `--fsync`: `sync_interval:
always`, as every generated deploy config sets), provisions a fleet, and runs
the agent loop (`natsfleet.agents.loop.Loop`) in this process with a scripted
model (answers at once, no network) and a tool that returns at once, so what
is timed is the loop and its journal. The journal comes from the runtime's
`LoopHost`, once as a fleet gets it and once with `NATSFLEET_LOOP_JOURNAL=off`
(the bench and debug switch: entries in memory only). Three shapes, each run
`--loops` times with each journal:

- `final`: one turn, no tool call (the journal: claim + 1 turn);
- `turns`: 10 turns of one tool call each, then the final turn (11 turns, 10 calls);
- `calls`: one turn of 10 tool calls, then the final turn (2 turns, 10 calls).

The journal on and off alternate in `--rounds` batches (wall: the median
batch; CPU: the total), so a machine whose load changes weighs on both.

From the three the cost of opening the journal, of a turn and of a tool call
are solved (turn = (turns - calls) / 9, ...), as wall time and as CPU time of
this process (the loop and its NATS client) and of nats-server.
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from natsfleet.agents.llm.types import LLMRequest, LLMResponse, TokenUsage, ToolCall
from natsfleet.agents.loop import Loop, tool
from natsfleet.agents.loop.host import JOURNAL_SWITCH, LoopHost
from natsfleet.bus import Bus, BusConfig
from natsfleet.process import NatsServer
from natsfleet.protocols import new_task_id, new_token

SHAPES = {"final": (0, 0), "turns": (10, 1), "calls": (1, 10)}  # (tool turns, calls per turn)


@tool
async def note(text: str) -> str:
    """Take a note."""
    return f"noted {text}"


class Model:
    """Answers `calls_per_turn` tool calls for `tool_turns` turns, then a final answer."""

    def __init__(self, tool_turns: int, calls_per_turn: int) -> None:
        self.tool_turns = tool_turns
        self.calls_per_turn = calls_per_turn

    async def generate(self, request: LLMRequest) -> LLMResponse:
        turn = sum(1 for m in request.messages if m.role == "assistant")
        calls: tuple[ToolCall, ...] = ()
        if turn < self.tool_turns:
            calls = tuple(
                ToolCall(id=f"c{turn}_{i}", name="note", arguments={"text": f"t{turn}c{i}"})
                for i in range(self.calls_per_turn)
            )
        return LLMResponse(
            text="" if calls else "done",
            tool_calls=calls,
            finish_reason="tool_calls" if calls else "stop",
            usage=TokenUsage(input_tokens=20, output_tokens=5),
            provider="bench",
            model="bench",
        )


class Context:
    """The loop's view of a task (LoopContext)."""

    def __init__(self, model: Model) -> None:
        self.task_id = new_task_id()
        self.attempt = 1
        self.token = new_token()
        self.budget_usd = None
        self.llm = model
        self.remaining_s = None

    def progress_event(self, note: str) -> None:
        return None


def server_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_shape(host: LoopHost, shape: str, loops: int) -> None:
    for _ in range(loops):
        ctx = Context(Model(*SHAPES[shape]))
        attempt: Any = SimpleNamespace(
            task_id=ctx.task_id, token=ctx.token, number=1, instance_id="bench"
        )
        journal = await host.journal(attempt).open()
        loop = Loop(
            ctx,  # type: ignore[arg-type]
            journal,
            0,
            tools=[note],
            system="",
            max_turns=12,
            max_parallel_tools=10,
            max_tokens=100,
            tier=None,
            model=None,
        )
        assert await loop.run([], None) == "done"


def host_with(bus: Bus, durable: bool) -> LoopHost:
    """The runtime's loop host, as a fleet gets it or with the journal switched off."""
    if durable:
        os.environ.pop(JOURNAL_SWITCH, None)
    else:
        os.environ[JOURNAL_SWITCH] = "off"
    try:
        return LoopHost(bus, caller=None)  # type: ignore[arg-type]
    finally:
        os.environ.pop(JOURNAL_SWITCH, None)


async def measure(
    hosts: dict[bool, LoopHost], loops: int, rounds: int, pid: int
) -> dict[bool, dict[str, tuple[float, ...]]]:
    """Per journal (on, off) and shape: (wall ms, client CPU ms, server CPU ms) per loop.

    On and off alternate in `rounds` batches, so a machine whose load changes
    meanwhile weighs on both alike; wall time is the median batch, CPU the total.
    """
    for host in hosts.values():
        await run_shape(host, "turns", 5)  # warm up
    batch = max(1, loops // rounds)
    walls: dict[tuple[bool, str], list[float]] = {}
    cpus: dict[tuple[bool, str], list[float]] = {}
    for _ in range(rounds):
        for durable, host in hosts.items():
            for shape in SHAPES:
                wall, cpu, server = time.perf_counter(), time.process_time(), server_cpu_s(pid)
                await run_shape(host, shape, batch)
                walls.setdefault((durable, shape), []).append(
                    (time.perf_counter() - wall) * 1000 / batch
                )
                totals = cpus.setdefault((durable, shape), [0.0, 0.0])
                totals[0] += time.process_time() - cpu
                totals[1] += server_cpu_s(pid) - server
    out: dict[bool, dict[str, tuple[float, ...]]] = {True: {}, False: {}}
    for (durable, shape), samples in walls.items():
        client_s, server_s = cpus[(durable, shape)]
        out[durable][shape] = (
            statistics.median(samples),
            client_s * 1000 / (batch * rounds),
            server_s * 1000 / (batch * rounds),
        )
    return out


def solve(per_loop: dict[str, tuple[float, ...]]) -> dict[str, tuple[float, ...]]:
    """Open, per turn and per call costs from the three shapes (each a linear sum)."""
    columns = range(len(per_loop["final"]))
    turn = [(per_loop["turns"][c] - per_loop["calls"][c]) / 9 for c in columns]
    opened = [per_loop["final"][c] - turn[c] for c in columns]
    call = [(per_loop["calls"][c] - opened[c] - 2 * turn[c]) / 10 for c in columns]
    return {"open": tuple(opened), "turn": tuple(turn), "tool call": tuple(call)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loops", type=int, default=100, help="per shape and journal")
    parser.add_argument("--rounds", type=int, default=10, help="alternating batches")
    parser.add_argument("--fsync", action="store_true", help="sync_interval: always")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config_file = None
        if args.fsync:  # what every generated deploy config sets
            config_file = Path(tmp) / "nats.conf"
            config_file.write_text("jetstream {\n  sync_interval: always\n}\n")
        async with NatsServer(store_dir=Path(tmp) / "js", config_file=config_file) as server:
            async with Bus(BusConfig(url=server.url, prefix="bench"), role="bench") as bus:
                await bus.provision()
                assert server.pid is not None
                hosts = {True: host_with(bus, True), False: host_with(bus, False)}
                figures = await measure(hosts, args.loops, args.rounds, server.pid)
                on, off = figures[True], figures[False]
    print(
        f"agent loop, {args.loops} loops per shape, fsync={'always' if args.fsync else 'default'}"
    )
    print("per loop (ms)            wall on   wall off   cpu on  cpu off  server on  server off")
    for shape in SHAPES:
        print(
            f"  {shape:22s} {on[shape][0]:8.2f} {off[shape][0]:9.2f} {on[shape][1]:8.2f}"
            f" {off[shape][1]:8.2f} {on[shape][2]:10.2f} {off[shape][2]:11.2f}"
        )
    solved_on, solved_off = solve(on), solve(off)
    print("journal's cost (on - off, ms)    wall   client cpu   server cpu")
    for part in solved_on:
        delta = [a - b for a, b in zip(solved_on[part], solved_off[part], strict=True)]
        print(f"  per {part:26s} {delta[0]:6.2f} {delta[1]:12.2f} {delta[2]:12.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
