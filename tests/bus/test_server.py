"""NatsServer: the Go threads of an embedded server that shares its machine."""

import os
from pathlib import Path

import pytest

from natsfleet.process import NatsServer, shared_gomaxprocs


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(): value.decode() for key, value in pairs}


def test_a_shared_server_gets_half_the_cpus_at_least_one() -> None:
    cpus = len(os.sched_getaffinity(0))
    assert shared_gomaxprocs() == max(1, cpus // 2)


@pytest.mark.parametrize(("gomaxprocs", "expected"), [(1, "1"), (3, "3"), (None, None)])
async def test_the_server_process_runs_with_the_gomaxprocs_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gomaxprocs: int | None, expected: str | None
) -> None:
    monkeypatch.delenv("GOMAXPROCS", raising=False)
    async with NatsServer(store_dir=tmp_path / "js", gomaxprocs=gomaxprocs) as server:
        assert server.pid is not None
        assert _environ(server.pid).get("GOMAXPROCS") == expected


async def test_an_operators_gomaxprocs_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOMAXPROCS", "7")
    async with NatsServer(store_dir=tmp_path / "js", gomaxprocs=1) as server:
        assert server.pid is not None
        assert _environ(server.pid)["GOMAXPROCS"] == "7"
