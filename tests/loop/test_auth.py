"""Under the generated auth config (deploy/permissions.py), an agent type's
NATS user can do what the loop needs: keep a task's journal, read the
registry for fleet skills as tools, hold sessions; a client reads and deletes
sessions but cannot write one."""

from natsfleet.agents.loop import Journal, TurnRecord
from natsfleet.client import FleetClient
from natsfleet.protocols import Bucket, new_task_id
from tests.security.conftest import AuthFleet, auth_fleet  # noqa: F401 (the fixture)


async def test_an_agent_user_keeps_a_journal_and_reads_the_registry(
    auth_fleet: AuthFleet,  # noqa: F811
) -> None:
    bus = await auth_fleet.bus("agent-echo", role="agent.echo")
    task_id = new_task_id()
    bucket = bus.subjects.bucket(Bucket.JOURNAL)
    mine = Journal(bus.js, bucket=bucket, task_id=task_id, token="a", attempt=1, instance_id="e")
    await mine.open()
    await mine.write("0.0", TurnRecord(text="hello"))
    reader = Journal(bus.js, bucket=bucket, task_id=task_id, token="r", attempt=0, instance_id="e")
    await reader.load()
    assert reader.get("0.0") == TurnRecord(text="hello")
    infos = await FleetClient(bus).agents(timeout_s=5)
    assert {"echo", "parent"} <= {i.agent for i in infos}
    # In the same fleet (its start costs ~8 s): sessions.
    await _sessions_under_auth(auth_fleet)


async def _sessions_under_auth(auth_fleet: AuthFleet) -> None:  # noqa: F811
    """The agent user takes a session's lock and writes its conversation; the
    client user lists, shows and deletes (a purge) but cannot write a session
    (a forged conversation would steer a model)."""
    import nats.errors
    from nats.js import errors as js_errors

    from natsfleet.agents.loop.session import SessionLog
    from natsfleet.agents.loop.session_admin import delete_session, list_sessions, show_session
    from natsfleet.agents.loop.session_records import Conversation
    from natsfleet.agents.session_config import SessionConfig

    agent_bus = await auth_fleet.bus("agent-echo", role="agent.echo")
    bucket = agent_bus.subjects.bucket(Bucket.SESSIONS)
    log = SessionLog(
        agent_bus.js,
        bucket=bucket,
        session_id="s1",
        task_id=new_task_id(),
        token="t",
        attempt=1,
        instance_id="e",
        config=SessionConfig(),
    )
    async with log.hold(5.0):
        await log.write_entry("conv", Conversation(next_n=1, budget_tokens=100))
    client_bus = await auth_fleet.bus("client", role="cli")
    assert [s.session_id for s in await list_sessions(client_bus.js, bucket)] == ["s1"]
    info = await show_session(client_bus.js, bucket, "s1")
    assert info is not None and info.conversation.next_n == 1 and info.holder is None
    try:
        await client_bus.js.publish(f"$KV.{bucket}.s1.conv", b"{}", timeout=0.5)
    except (nats.errors.Error, js_errors.Error):
        pass  # refused: no permission (a timeout: the publish never reached the stream)
    else:
        raise AssertionError("a client wrote to a session")
    assert await delete_session(client_bus.js, bucket, "s1")
    assert await show_session(client_bus.js, bucket, "s1") is None
