"""The chaos soak at CI size: 1,000 tasks under kill -9, SIGSTOP, supervisor
failover and a nats-server restart. See harness.py for the schedule."""

from pathlib import Path

import pytest

from tests.chaos.harness import SoakConfig, soak


@pytest.mark.timeout(300)
async def test_chaos_nothing_lost_nothing_doubled(tmp_path: Path) -> None:
    report = await soak(SoakConfig(tasks=1000, baseline_tasks=250), tmp_path / "soak")
    summary = report.summary()
    (tmp_path / "soak" / "report.json").write_text(summary)
    print(summary)
    assert report.lost == [], summary
    assert report.duplicated == [], summary
    assert report.not_terminal == [], summary
    assert report.completed_once + sum(report.failed.values()) == report.tasks, summary
    for fault in ("agent_kill9", "agent_sigstop", "supervisor_kill9", "nats_restart"):
        assert report.faults[fault] >= 1, summary
    assert report.drain_s <= 2 * report.fault_free_s, summary
