"""The claim design's fence (bench/claim_proto.py, issue 19 item 4) holds on a
real nats-server: a holder that stalls past its claim deadline has its late
result refused, and another agent completes the task exactly once."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from natsfleet.process.server import NatsServer

PROTO = Path(__file__).resolve().parents[2] / "bench" / "claim_proto.py"


def load_proto() -> ModuleType:
    spec = importlib.util.spec_from_file_location("claim_proto", PROTO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["claim_proto"] = module  # msgspec and dataclasses resolve names through it
    spec.loader.exec_module(module)
    return module


async def test_a_stalled_holders_late_result_is_refused(nats_server: NatsServer) -> None:
    proto = load_proto()
    report = await proto.fault_check(nats_server.url, "fence", claim_ttl_ms=300)
    assert report.staller_claimed == 1, report
    assert report.requeued == 1, report
    assert report.refused == [f"{report.task_id}:1"], report
    assert report.record.state == "completed", report
    assert report.first_holder == "good", report
    assert (report.record.holder, report.record.attempt) == ("good", 2), report
    assert report.completed_writes == 1, report
    assert report.completions_heard == 1, report
    # The hazard the design must route around: a core subscriber of the record
    # subject also hears the refused completion; the stored stream does not.
    assert report.core_completed_heard == 2, report
    assert report.holds


async def test_the_one_stream_layout_refuses_a_stalled_holders_late_result(
    nats_server: NatsServer,
) -> None:
    load_proto()
    spec = importlib.util.spec_from_file_location(
        "claim_stream", PROTO.with_name("claim_stream.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = await module.fault_check_stream(nats_server.url, "fence1", claim_ttl_ms=300)
    assert report.refused == [f"{report.task_id}:1"], report
    assert (report.record.holder, report.record.attempt) == ("good", 2), report
    assert report.completed_writes == 1, report
    assert report.requeued == 1, report
    assert report.holds, report


async def test_without_the_fence_the_same_stall_stores_two_results(
    nats_server: NatsServer,
) -> None:
    """The contrast: what the fence prevents does happen without it."""
    proto = load_proto()
    assert await proto.unfenced_check(nats_server.url, "nofence", ack_wait_s=0.3) == 2
