"""`natsfleet trace` reads spans back from NATS and draws the task's tree."""

import asyncio
import subprocess
import sys
from pathlib import Path

from natsfleet.bus import Bus, BusConfig
from natsfleet.client.traces import build_tree, read_spans, spans_of_task
from natsfleet.process import NatsServer
from natsfleet.protocols import SpanRecord
from natsfleet.telemetry.tracing import TASK_ID_ATTRIBUTE

NATSFLEET = str(Path(sys.executable).parent / "natsfleet")
TRACE = "a" * 32


def span(
    span_id: str, parent: str | None, name: str, start: int, end: int, **attrs: str
) -> SpanRecord:
    return SpanRecord(
        trace_id=TRACE,
        span_id=span_id.ljust(16, "0"),
        parent_id=parent.ljust(16, "0") if parent else None,
        name=name,
        service="natsfleet-test",
        start_ns=start * 1_000_000,
        end_ns=end * 1_000_000,
        attributes=dict(attrs),
    )


SPANS = [
    span("1", None, "submit", 0, 2, **{TASK_ID_ATTRIBUTE: "T1"}),
    span("2", "1", "publish natsfleet.submit", 1, 2),
    span("3", "2", "process natsfleet.submit", 3, 4),
    span("4", "3", "attempt 1", 5, 40),
    span("5", "4", "invoke_agent echo", 6, 38),
]
OTHER = SpanRecord(
    trace_id="b" * 32, span_id="9" * 16, name="unrelated", service="x", start_ns=0, end_ns=1
)


def test_tree_follows_parents() -> None:
    [root] = build_tree(spans_of_task([*SPANS, OTHER], "T1"))
    assert root.span.name == "submit"
    chain = [root.span.name]
    node = root
    while node.children:
        node = node.children[-1]
        chain.append(node.span.name)
    assert chain == [
        "submit",
        "publish natsfleet.submit",
        "process natsfleet.submit",
        "attempt 1",
        "invoke_agent echo",
    ]


async def test_trace_command_prints_the_waterfall(nats_server: NatsServer, prefix: str) -> None:
    async with Bus(BusConfig(url=nats_server.url, prefix=prefix)) as bus:
        await bus.provision()
        for record in [*SPANS, OTHER]:
            await bus._publish_span_record("natsfleet-test", record)
        await bus.nc.flush()
        # Core publishes: the stream stores them a moment after the flush.
        async with asyncio.timeout(5):
            while len(await read_spans(bus)) < len(SPANS) + 1:
                await asyncio.sleep(0.02)
        assert len(await read_spans(bus)) == len(SPANS) + 1
    out = subprocess.run(
        [NATSFLEET, "trace", "T1", "--nats", nats_server.url, "--prefix", prefix],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "invoke_agent echo" in out and "attempt 1" in out and "unrelated" not in out
    assert "32.00 ms" in out  # invoke_agent: 6 -> 38 ms
    missing = subprocess.run(
        [NATSFLEET, "trace", "NOPE", "--nats", nats_server.url, "--prefix", prefix],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 1 and "NATSFLEET_TRACE_NATS=1" in missing.stderr
