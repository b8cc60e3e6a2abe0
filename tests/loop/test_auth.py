"""Under the generated auth config (deploy/permissions.py), an agent type's
NATS user can do what the loop needs: keep a task's journal and read the
registry for fleet skills as tools."""

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
