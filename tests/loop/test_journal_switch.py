"""`NATSFLEET_LOOP_JOURNAL=off` (bench/agent_loop.py's switch): journals in memory only."""

from types import SimpleNamespace
from typing import Any

import pytest

from natsfleet.agents.loop import TurnRecord
from natsfleet.agents.loop.host import JOURNAL_SWITCH, LoopHost
from natsfleet.bus import Bus
from natsfleet.protocols import new_task_id


async def test_the_switch_keeps_journals_in_memory(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    await bus.provision()
    attempt: Any = SimpleNamespace(task_id=new_task_id(), token="t", number=1, instance_id="i")
    on = LoopHost(bus, caller=None)  # type: ignore[arg-type]
    monkeypatch.setenv(JOURNAL_SWITCH, "off")
    off = LoopHost(bus, caller=None)  # type: ignore[arg-type]
    memory = await off.journal(attempt).open()
    await memory.write("0.0", TurnRecord(text="kept in memory"))
    assert not memory.durable and memory.get("0.0") is not None
    durable = on.journal(attempt)
    assert durable.durable
    await durable.load()
    assert durable.entries == {}  # nothing reached JetStream
