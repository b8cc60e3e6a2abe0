"""The claim design's fence (bench/claim_proto.py, bench/claim_stream.py, issue
19 item 4) holds on a real nats-server: a holder that stalls past its claim
deadline has its late result refused, and another agent completes the task
exactly once; without the fence the same stall stores two results."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from natsfleet.process.server import NatsServer

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load(name: str) -> ModuleType:
    """A bench module by file, registered under its name so the others import
    it (bench/ is not put on sys.path: its file names would shadow modules)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def checks() -> ModuleType:
    for name in ("claim_pull", "claim_proto", "claim_stream"):
        load(name)
    return load("claim_checks")


async def test_a_stalled_holders_late_result_is_refused(
    nats_server: NatsServer, checks: ModuleType
) -> None:
    report = await checks.fault_check(nats_server.url, "fence", claim_ttl_ms=300)
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
    nats_server: NatsServer, checks: ModuleType
) -> None:
    report = await checks.fault_check_stream(nats_server.url, "fence1", claim_ttl_ms=300)
    assert report.refused == [f"{report.task_id}:1"], report
    assert (report.record.holder, report.record.attempt) == ("good", 2), report
    assert report.completed_writes == 1, report
    assert report.requeued == 1, report
    assert report.holds, report


async def test_without_the_fence_the_same_stall_stores_two_results(
    nats_server: NatsServer, checks: ModuleType
) -> None:
    """The contrast: what the fence prevents does happen without it."""
    assert await checks.unfenced_check(nats_server.url, "nofence", ack_wait_s=0.3) == 2
