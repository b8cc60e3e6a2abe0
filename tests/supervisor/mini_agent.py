"""A minimal agent instance that follows docs/architecture.md's contract over the Bus.

Used by the supervisor tests as a real subprocess until (and besides) the
agent runtime. Input is a JSON object:
  sleep_s      run this long (default 0)
  fail         raise an error of this type instead of returning
  retryable    whether that error is retryable (default true)
  cost_usd     report this cost in the Result's usage
  calls, input_tokens, output_tokens
               report these in the Result's usage too
  effects      a directory: append a line to raw.log per execution and
               create effects/<task_id> once (a side-effect store that
               deduplicates by task id)
  detail_bytes, type_bytes  fail (with `fail`) with a detail / an error type
               of this many characters
  output_bytes answer with a string of this many characters, inline in the
               Result (as an agent that knows no size rule would)
The output is the input's `n` (or null).
"""

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import time
from collections import deque
from pathlib import Path
from typing import Any

import msgspec

from natsfleet.bus import Bus, BusConfig, Incoming
from natsfleet.process.loop import loop_factory
from natsfleet.protocols import (
    Accept,
    AgentInbox,
    Assign,
    AssignBatch,
    AssignBatchReply,
    Bye,
    Cancel,
    Codec,
    Failure,
    FailureKind,
    Heartbeat,
    Hello,
    InFlight,
    Message,
    Reject,
    RejectCode,
    Result,
    Rollcall,
    SkillSpec,
    Usage,
    new_incarnation,
    to_raw,
)


class MiniAgent:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.bus = Bus(
            BusConfig(url=args.url, prefix=args.prefix), role="agent", instance=args.instance
        )
        self.incarnation = new_incarnation()
        self.running: dict[str, asyncio.Task[None]] = {}
        self.recent: deque[str] = deque(maxlen=256)
        self.seq = 0
        self.draining = False
        self.stop = asyncio.Event()

    def hello(self) -> Hello:
        return Hello(
            instance_id=self.args.instance,
            agent=self.args.agent,
            incarnation=self.incarnation,
            skills=tuple(SkillSpec(name=s) for s in self.args.skills.split(",")),
            capacity=self.args.capacity,
            host=socket.gethostname(),
            pid=os.getpid(),
            heartbeat_interval_s=self.args.hb,
            assign_batch=True,
        )

    async def run(self) -> None:
        s, a, i = self.bus.subjects, self.args.agent, self.args.instance
        await self.bus.connect()
        inbox = Codec[AgentInbox](AgentInbox)
        await self.bus.subscribe(s.assign(a, i), inbox, self.on_inbox)
        await self.bus.subscribe(s.cancel(a, i), inbox, self.on_inbox)
        await self.bus.subscribe(s.rollcall(), Codec[Rollcall](Rollcall), self.on_rollcall)
        await self.bus.publish(s.hello(a, i), self.hello())
        beat = asyncio.create_task(self.heartbeats())
        await self.stop.wait()
        # Drain: refuse new work, hand back what still runs.
        self.draining = True
        for task in list(self.running.values()):
            task.cancel()
        await asyncio.gather(*self.running.values(), return_exceptions=True)
        beat.cancel()
        await self.bus.publish(
            s.bye(a, i), Bye(instance_id=i, agent=a, incarnation=self.incarnation)
        )
        await self.bus.close()

    async def heartbeats(self) -> None:
        s = self.bus.subjects
        while True:
            self.seq += 1
            hb = Heartbeat(
                instance_id=self.args.instance,
                agent=self.args.agent,
                incarnation=self.incarnation,
                seq=self.seq,
                load=len(self.running),
                capacity=self.args.capacity,
                in_flight=tuple(
                    InFlight(task_id=t.get_name(), token=k) for k, t in self.running.items()
                ),
                recent=tuple(self.recent),
                draining=self.draining,
            )
            with contextlib.suppress(Exception):
                await self.bus.publish(s.heartbeat(self.args.agent, self.args.instance), hb)
            await asyncio.sleep(self.args.hb)

    async def on_rollcall(self, _: Rollcall, __: Incoming) -> Message | None:
        s = self.bus.subjects
        await self.bus.publish(s.hello(self.args.agent, self.args.instance), self.hello())
        return None

    async def on_inbox(self, message: AgentInbox, _: Incoming) -> Message | None:
        if isinstance(message, Cancel):
            task = self.running.get(message.token)
            if task is not None:
                task.cancel()
            return None
        if isinstance(message, AssignBatch):
            return AssignBatchReply(replies=tuple(self.on_assign(a) for a in message.assigns))
        return self.on_assign(message)

    def on_assign(self, message: Assign) -> Accept | Reject:
        i = self.args.instance
        if message.token in self.running or message.token in self.recent:
            return Accept(task_id=message.task_id, token=message.token, instance_id=i)
        if self.draining or len(self.running) >= self.args.capacity:
            code = RejectCode.DRAINING if self.draining else RejectCode.AT_CAPACITY
            return Reject(task_id=message.task_id, token=message.token, instance_id=i, code=code)
        task = asyncio.create_task(self.execute(message), name=message.task_id)
        self.running[message.token] = task
        return Accept(task_id=message.task_id, token=message.token, instance_id=i)

    async def execute(self, assign: Assign) -> None:
        spec: dict[str, Any] = msgspec.json.decode(assign.input)
        started = time.monotonic()
        common = dict(
            task_id=assign.task_id,
            token=assign.token,
            attempt=assign.attempt,
            instance_id=self.args.instance,
            agent=self.args.agent,
        )
        outcome: Result | Failure
        try:
            if spec.get("effects"):
                root = Path(spec["effects"])
                with (root / "raw.log").open("a") as raw:
                    raw.write(f"{assign.task_id} {self.args.instance}\n")
            await asyncio.sleep(float(spec.get("sleep_s", 0)))
            if spec.get("fail"):
                outcome = Failure(
                    **common,
                    kind=FailureKind.ERROR,
                    error_type="E" * spec["type_bytes"] if "type_bytes" in spec else spec["fail"],
                    detail="d" * spec["detail_bytes"]
                    if "detail_bytes" in spec
                    else "asked to fail",
                    retryable=bool(spec.get("retryable", True)),
                )
            else:
                if spec.get("effects"):
                    effect = Path(spec["effects"]) / "effects" / assign.task_id
                    effect.parent.mkdir(exist_ok=True)
                    with contextlib.suppress(FileExistsError), effect.open("x") as f:
                        f.write(self.args.instance)
                usage = Usage(
                    calls=int(spec.get("calls", 0)),
                    input_tokens=int(spec.get("input_tokens", 0)),
                    output_tokens=int(spec.get("output_tokens", 0)),
                    cost_usd=float(spec.get("cost_usd", 0.0)),
                )
                output = "y" * spec["output_bytes"] if "output_bytes" in spec else spec.get("n")
                outcome = Result(**common, output=to_raw(output), usage=usage)
        except asyncio.CancelledError:
            kind = FailureKind.HANDED_BACK if self.draining else FailureKind.CANCELED
            outcome = Failure(**common, kind=kind, error_type=kind.value, retryable=self.draining)
        outcome = msgspec.structs.replace(outcome, duration_ms=(time.monotonic() - started) * 1000)
        subject = self.bus.subjects.result(self.args.agent, self.args.instance)
        while True:
            try:
                await self.bus.publish_js(
                    subject, outcome, msg_id=f"{assign.task_id}:{assign.token}"
                )
                break
            except Exception:
                await asyncio.sleep(0.05)
        self.recent.append(assign.token)
        self.running.pop(assign.token, None)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--instance", required=True)
    parser.add_argument("--agent", default="mini")
    parser.add_argument("--skills", default="echo")
    parser.add_argument("--capacity", type=int, default=4)
    parser.add_argument("--hb", type=float, default=0.05)
    agent = MiniAgent(parser.parse_args())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.stop.set)
    await agent.run()


if __name__ == "__main__":
    # Like real agent processes (natsfleet.agents.process): uvloop when installed.
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())
