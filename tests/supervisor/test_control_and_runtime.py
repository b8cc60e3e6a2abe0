"""Typed errors from the control API; the real agent runtime under the supervisor."""

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

from natsfleet.bus import NoResponders
from natsfleet.protocols import (
    Codec,
    ControlReply,
    ErrorCode,
    ErrorReply,
    ListRequest,
    RemoteError,
    StatusRequest,
    TaskState,
)
from tests.procs import AgentProcs

_REPLY = Codec[ControlReply](ControlReply)


async def _raw_request(fleet: Any, verb: str, body: bytes) -> ErrorReply:
    msg = await fleet.bus.nc.request(fleet.bus.subjects.control(verb), body, timeout=5)
    reply = _REPLY.decode(msg.data)
    assert isinstance(reply, ErrorReply), reply
    return reply


async def test_bad_control_requests_get_typed_errors(fleet: Any) -> None:
    await fleet.supervisor()
    unknown_verb = await _raw_request(fleet, "frobnicate", msgspec.json.encode(ListRequest()))
    assert unknown_verb.code == ErrorCode.UNKNOWN_VERB
    malformed = await _raw_request(fleet, "status", b"{not json")
    assert malformed.code == ErrorCode.BAD_REQUEST
    wrong_type = await _raw_request(fleet, "status", msgspec.json.encode(ListRequest()))
    assert wrong_type.code == ErrorCode.BAD_REQUEST
    missing_field = await _raw_request(fleet, "status", b'{"type": "ctl.status"}')
    assert missing_field.code == ErrorCode.BAD_REQUEST
    with pytest.raises(RemoteError) as info:
        await fleet.client.status("01NOSUCHTASK0000000000000")
    assert info.value.code == ErrorCode.UNKNOWN_TASK
    with pytest.raises(RemoteError) as info:
        await fleet.client.cancel("01NOSUCHTASK0000000000000")
    assert info.value.code == ErrorCode.UNKNOWN_TASK
    unknown = await _raw_request(
        fleet, "status", msgspec.json.encode(StatusRequest(task_id="bad key!"))
    )
    assert unknown.code == ErrorCode.UNKNOWN_TASK


async def test_no_supervisor_means_no_responders(fleet: Any) -> None:
    with pytest.raises(NoResponders):
        await fleet.client.list()


async def test_real_runtime_agent_killed_mid_task(fleet: Any, tmp_path: Path) -> None:
    await fleet.supervisor()
    async with AgentProcs(fleet.server.url, fleet.prefix, tmp_path / "agents") as procs:
        first = await procs.start("tests.fleet_agents:EchoAgent", instance_id="r1")
        second = await procs.start("tests.fleet_agents:EchoAgent", instance_id="r2")
        agents = {"r1": first, "r2": second}

        async def routable() -> None:
            while len([a for a in await fleet.client.agents() if a.alive]) < 2:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(routable(), 20)
        task_id = await fleet.client.submit("sleep", {"ms": 1500})
        holder = None
        async for event in fleet.client.watch(task_id):
            if event.state == TaskState.WORKING:
                holder = event.instance_id
                break
        assert holder in agents
        await agents[holder].kill()
        event = await fleet.client.wait(task_id, timeout_s=15)
        assert event.state == TaskState.COMPLETED and event.instance_id != holder
        record = await fleet.client.status(task_id)
        assert [a.outcome for a in record.history] == ["lost", "completed"]
