"""Many idle agent instances in one process, each speaking the real protocol
(bench/fleet_scale.py starts several).

    .venv/bin/python bench/fleet_sim.py --url URL --prefix P --first 0 --count 2500
                                        [--agent idle] [--skill idle] [--heartbeat-s 2]

What an idle instance of the agent runtime does on the bus, instance by
instance (agents/runtime.py, agents/_presence.py): a Hello on
`agent.<type>.<id>.hello` with its skills and capacity, a Heartbeat on
`.hb` every `--heartbeat-s` (seq rising, load 0, nothing in flight, not
draining), the Hello again on a Rollcall (rollcalls that arrive while
this process still answers one get a single further pass), and its assign and cancel
inbox subscribed (a wildcard per process rather than one subscription per
instance: the supervisor cannot tell). Heartbeats are spread evenly over the
interval, as independent processes started at different moments would be.
An Assign, which the bench never routes here (the instances offer a skill
nobody submits), is refused `at_capacity`. SIGTERM sends every Bye.
"""

import argparse
import asyncio
import os
import signal
import socket
import time

from natsfleet.bus import Bus, BusConfig, Incoming
from natsfleet.process.loop import loop_factory
from natsfleet.protocols import (
    AgentInbox,
    Assign,
    AssignBatch,
    AssignBatchReply,
    Bye,
    Codec,
    Heartbeat,
    Hello,
    Message,
    Reject,
    RejectCode,
    Rollcall,
    SkillSpec,
    new_incarnation,
)


class Simulator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.bus = Bus(BusConfig(url=args.url, prefix=args.prefix), role="agent", instance="sim")
        self.ids = [f"{args.agent}-{n}" for n in range(args.first, args.first + args.count)]
        self.incarnations = {i: new_incarnation() for i in self.ids}
        self.seq = dict.fromkeys(self.ids, 0)
        self.stop = asyncio.Event()
        self.answering = False
        self.again = False

    def hello(self, instance_id: str) -> Hello:
        return Hello(
            instance_id=instance_id,
            agent=self.args.agent,
            agent_version="1",
            incarnation=self.incarnations[instance_id],
            skills=(SkillSpec(name=self.args.skill, description="idle"),),
            capacity=self.args.capacity,
            host=socket.gethostname(),
            pid=os.getpid(),
            heartbeat_interval_s=self.args.heartbeat_s,
            started_ms=int(time.time() * 1000),
            assign_batch=True,
        )

    async def hellos(self) -> None:
        s = self.bus.subjects
        for n, instance_id in enumerate(self.ids):
            await self.bus.publish(s.hello(self.args.agent, instance_id), self.hello(instance_id))
            if n % 200 == 199:
                await asyncio.sleep(0)  # let heartbeats and replies through

    async def heartbeats(self) -> None:
        s, agent = self.bus.subjects, self.args.agent
        interval_s = self.args.heartbeat_s
        tick_s = 0.01
        per_tick = len(self.ids) * tick_s / interval_s
        owed = 0.0
        at = 0
        while True:
            started = time.monotonic()
            owed += per_tick
            while owed >= 1.0:
                owed -= 1.0
                instance_id = self.ids[at]
                at = (at + 1) % len(self.ids)
                self.seq[instance_id] += 1
                beat = Heartbeat(
                    instance_id=instance_id,
                    agent=agent,
                    incarnation=self.incarnations[instance_id],
                    seq=self.seq[instance_id],
                    load=0,
                    capacity=self.args.capacity,
                )
                await self.bus.publish(s.heartbeat(agent, instance_id), beat)
            await asyncio.sleep(max(0.0, tick_s - (time.monotonic() - started)))

    async def on_rollcall(self, _: Rollcall, __: Incoming) -> Message | None:
        # Rollcalls that come while the last one is still being answered get
        # one more pass, not one each: real instances answer at once, in
        # parallel; this process answers for thousands, one after another.
        if self.answering:
            self.again = True
            return None
        self.answering = True
        try:
            await self.hellos()
            while self.again:
                self.again = False
                await self.hellos()
        finally:
            self.answering = False
        return None

    async def on_inbox(self, message: AgentInbox, incoming: Incoming) -> Message | None:
        instance_id = incoming.subject.split(".")[-3]

        def refuse(assign: Assign) -> Reject:
            return Reject(
                task_id=assign.task_id, token=assign.token, instance_id=instance_id,
                code=RejectCode.AT_CAPACITY, detail="a simulated idle instance",
            )  # fmt: skip

        if isinstance(message, AssignBatch):
            return AssignBatchReply(replies=tuple(refuse(a) for a in message.assigns))
        if isinstance(message, Assign):
            return refuse(message)
        return None

    async def run(self) -> None:
        s, agent = self.bus.subjects, self.args.agent
        await self.bus.connect()
        await self.bus.subscribe(
            f"{s.prefix}.agent.{agent}.*.in.*", Codec[AgentInbox](AgentInbox), self.on_inbox
        )
        await self.bus.subscribe(
            s.rollcall(), Codec[Rollcall](Rollcall), self.on_rollcall, concurrency=2
        )
        await self.hellos()
        beats = asyncio.create_task(self.heartbeats())
        await self.stop.wait()
        beats.cancel()
        for instance_id in self.ids:
            bye = Bye(
                instance_id=instance_id, agent=agent,
                incarnation=self.incarnations[instance_id], reason="bench over",
            )  # fmt: skip
            await self.bus.publish(s.bye(agent, instance_id), bye)
        await self.bus.close()


async def main(args: argparse.Namespace) -> None:
    sim = Simulator(args)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, sim.stop.set)
    await sim.run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=2500)
    parser.add_argument("--agent", default="idle")
    parser.add_argument("--skill", default="idle")
    parser.add_argument("--capacity", type=int, default=4)
    parser.add_argument("--heartbeat-s", type=float, default=2.0)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main(parser.parse_args()))
