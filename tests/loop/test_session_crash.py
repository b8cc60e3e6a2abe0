"""A session across a kill -9 (real processes: `natsfleet supervisor`, and
`natsfleet agent run tests.session_agents:ChatAgent`): the dead holder's task
is retried and takes the session at once; the next task of the session waits
for it and sees its whole exchange."""

from natsfleet.agents.loop.session_admin import show_session
from natsfleet.protocols import Bucket
from tests.llm.wire import WireServer
from tests.loop.conftest import MODEL, lines
from tests.loop.test_crash import Fleet, fleet  # noqa: F401 (the fixture)
from tests.session_agents import Said, Say

CHATTER = "tests.session_agents:ChatAgent"


async def test_a_killed_holder_is_retried_first_and_the_next_task_sees_its_exchange(
    fleet: Fleet,  # noqa: F811
    wire: WireServer,
) -> None:
    wire.script(MODEL, wire.tool_call("gate", {}), wire.ok("A done"), wire.ok("B done"))
    first = await fleet.procs.start(CHATTER, instance_id="c1", env=fleet.env)
    await fleet.d.hello("c1", timeout_s=15)
    a = await fleet.client.submit("chat", Say(prompt="task A"), session="crashy")
    await fleet.d.wait_for(lambda: any(r[0] == "gate" for r in lines(fleet.effects)) or None)
    await first.kill()  # SIGKILL inside the gate: the session's lock stays, unrefreshed
    b = await fleet.client.submit("chat", Say(prompt="task B"), session="crashy")
    fleet.gate.touch()
    await fleet.procs.start(CHATTER, instance_id="c2", env=fleet.env)
    said_a = await fleet.client.result(a, Said, timeout_s=30)
    said_b = await fleet.client.result(b, Said, timeout_s=30)
    assert (said_a.text, said_a.instance_id, said_b.text) == ("A done", "c2", "B done")
    # One model call per turn across the processes (A's retry replayed turn 0), B's last.
    assert wire.count(MODEL) == 3
    seen = [str(m.get("content") or "") for m in wire.requests[2].body["messages"]]
    assert (seen[0], *seen[2:]) == ("task A", "open", "A done", "task B")
    info = await show_session(fleet.d.bus.js, fleet.d.subjects.bucket(Bucket.SESSIONS), "crashy")
    assert info is not None and info.holder is None
    assert [e.task_id for e in info.conversation.exchanges] == [a, b]
