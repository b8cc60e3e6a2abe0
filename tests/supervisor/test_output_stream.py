"""The OUTPUT stream: a late watcher gets the whole output, a reader resumes
after a sequence, and a task reassigned mid-stream is followed across attempts
(client/output.py; docs/operations.md, "Output streams")."""

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient, OutputItem
from natsfleet.client.output import follow
from natsfleet.protocols import OutputChunk, Stream, TaskState
from tests.procs import AgentProcs
from tests.tcp_cut import CuttableRelay

ECHO = "tests.fleet_agents:EchoAgent"


def texts(items: list[OutputItem]) -> str:
    return "".join(i.message.text for i in items if isinstance(i.message, OutputChunk))


async def collect(client: FleetClient, task_id: str, **kwargs: Any) -> list[OutputItem]:
    async def run() -> list[OutputItem]:
        return [item async for item in client.output_stream(task_id, **kwargs)]

    return await asyncio.wait_for(run(), 20)


async def test_a_late_watcher_gets_the_whole_stream_and_a_reader_resumes_after_a_seq(
    fleet: Any, tmp_path: Path
) -> None:
    await fleet.supervisor()
    async with AgentProcs(fleet.server.url, fleet.prefix, tmp_path / "agents") as procs:
        await procs.start(ECHO, instance_id="s-1", heartbeat_s=0.1)
        task_id = await fleet.client.submit("stream", {"chunks": 30, "gap_ms": 5}, queue=True)
        done = await fleet.client.wait(task_id, timeout_s=20)
        assert done.state == TaskState.COMPLETED
        expected = "".join(f"t{i} " for i in range(30))

        # Attached after the task ended: everything, then the end.
        whole = await collect(fleet.client, task_id)
        assert texts(whole) == expected
        seqs = [item.seq for item in whole]
        assert seqs == sorted(set(seqs))
        assert {item.attempt for item in whole} == {1}

        # Cut off after a few items: the rest from after the last one seen, once each.
        cut = len(whole) // 2
        rest = await collect(fleet.client, task_id, after_seq=whole[cut - 1].seq)
        assert [item.seq for item in rest] == seqs[cut:]
        assert texts(whole[:cut]) + texts(rest) == expected


async def test_a_task_reassigned_mid_stream_is_followed_across_attempts(
    fleet: Any, tmp_path: Path
) -> None:
    await fleet.supervisor()
    async with AgentProcs(fleet.server.url, fleet.prefix, tmp_path / "agents") as procs:
        first = await procs.start(ECHO, instance_id="s-1", heartbeat_s=0.1)
        task_id = await fleet.client.submit("stream", {"chunks": 60, "gap_ms": 25}, queue=True)
        items: list[OutputItem] = []
        seen_some = asyncio.Event()

        async def watch() -> None:
            async for item in fleet.client.output_stream(task_id):
                items.append(item)
                if len(items) >= 3:
                    seen_some.set()

        watcher = asyncio.create_task(watch())
        await asyncio.wait_for(seen_some.wait(), 15)
        await first.kill()  # mid-stream: the task is reassigned
        await procs.start(ECHO, instance_id="s-2", heartbeat_s=0.1)
        done = await fleet.client.wait(task_id, timeout_s=30)
        assert done.state == TaskState.COMPLETED
        await asyncio.wait_for(watcher, 10)  # the stream ends with the task

    attempts = [item.attempt for item in items]
    assert attempts[0] == 1 and attempts[-1] == 2
    assert attempts == sorted(attempts)  # the second attempt's output follows the first's
    second = [item for item in items if item.attempt == 2]
    assert texts(second) == "".join(f"t{i} " for i in range(60))
    assert [item.seq for item in items] == sorted({item.seq for item in items})


async def test_a_watcher_cut_off_mid_stream_gets_every_chunk_once_in_order(
    fleet: Any, tmp_path: Path
) -> None:
    await fleet.supervisor()
    server = urlparse(fleet.server.url)
    async with (
        AgentProcs(fleet.server.url, fleet.prefix, tmp_path / "agents") as procs,
        CuttableRelay(server.hostname or "127.0.0.1", server.port or 4222) as relay,
    ):
        await procs.start(ECHO, instance_id="s-1", heartbeat_s=0.1)
        config = BusConfig(url=relay.url, prefix=fleet.prefix, reconnect_wait_s=0.1)
        async with Bus(config, role="watcher") as bus:
            watcher = FleetClient(bus)
            task_id = await fleet.client.submit("stream", {"chunks": 80, "gap_ms": 20}, queue=True)
            items: list[OutputItem] = []

            async def watch() -> None:
                async for item in watcher.output_stream(task_id):
                    items.append(item)

            reading = asyncio.create_task(watch())
            async with asyncio.timeout(15):
                while len(items) < 5:
                    await asyncio.sleep(0.01)
            relay.cut()  # the network drops the watcher mid-stream; chunks go on
            await asyncio.sleep(0.3)
            relay.cut()
            assert (await fleet.client.wait(task_id, timeout_s=30)).state == TaskState.COMPLETED
            await asyncio.wait_for(reading, 20)
    assert bus.stats.reconnects >= 1
    assert texts(items) == "".join(f"t{i} " for i in range(80))
    assert [item.seq for item in items] == sorted({item.seq for item in items})


async def test_the_stream_ends_when_the_oldest_output_has_expired(bus: Bus) -> None:
    # Age and size limits drop the oldest output, so the stream's first sequence
    # moves on. A consumer with nothing to deliver then reports that position
    # (minus one) as the last sequence it delivered: a reader that had read
    # nothing must not wait for it forever once the task has ended.
    old = bus.subjects.output("echo", "i1", "01OLD")
    for seq in (1, 2, 3):
        await bus.publish_js(old, OutputChunk(task_id="01OLD", token="t", seq=seq, text="x"))
    await bus.js.purge_stream(bus.subjects.stream(Stream.OUTPUT))  # as max_age would
    new = bus.subjects.output("echo", "i1", "01NEW")
    await bus.publish_js(new, OutputChunk(task_id="01NEW", token="t", seq=1, text="y"))

    async def ended() -> None:
        return None

    async def read(task_id: str, after_seq: int = 0) -> list[str]:
        stream = follow(bus, task_id, ended, after_seq=after_seq)
        got = [i.message.text async for i in stream if isinstance(i.message, OutputChunk)]
        return got

    async with asyncio.timeout(5):
        assert await read("01NONE") == []  # a task that wrote nothing
        assert await read("01OLD") == []  # its output expired
        assert await read("01OLD", after_seq=1) == []  # resuming after an expired sequence
        assert await read("01NEW") == ["y"]


async def test_the_stream_of_a_task_without_output_ends_though_others_output_follows(
    bus: Bus,
) -> None:
    # A filtered consumer's delivered stream sequence moves past the output of
    # other tasks it skips: the end is told by deliveries to this reader.
    for seq in range(3):
        chunk = OutputChunk(task_id="other", token="t", seq=seq, text="x")
        subject = bus.subjects.task_output("other").replace("*", "x")
        await bus.publish_js(subject, chunk, msg_id=f"other-{seq}")

    async def ended() -> None:
        return None

    async def read() -> list[OutputItem]:
        return [item async for item in follow(bus, "silent", ended)]

    assert await asyncio.wait_for(read(), 5) == []
