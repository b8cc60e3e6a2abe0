"""`natsfleet agent run a2a:URL`: a remote A2A agent (tests/a2a_remote.py, a real
a2a-sdk server process) proxied into a fleet with a real supervisor and two
proxy replicas (docs/interop.md, "Proxying a remote A2A agent into the fleet")."""

import msgspec
import pytest

from natsfleet.agents.a2a import A2AInput, A2AResult, CardUnavailable, ProxySettings
from natsfleet.protocols import OutputChunk, Progress, RetryPolicy, TaskState, Timeouts, decode_raw
from tests.a2a_client.conftest import start_remote
from tests.procs import AgentProcs, until_agents
from tests.supervisor.conftest import Fleet, fleet

pytestmark = pytest.mark.asyncio
__all__ = ["fleet"]

KEY = "remote-key-0123456789"


async def test_a_proxied_remote_agent_under_the_supervisor(fleet: Fleet) -> None:
    async with AgentProcs(fleet.server.url, fleet.prefix, fleet.tmp / "procs") as procs:
        remote = await start_remote(procs, fleet.tmp, "--key", KEY)
        await fleet.supervisor()
        env = {"NATSFLEET_A2A_KEY": KEY}
        args = ("--name", "shouter")
        # Three replicas: one is drained mid-task below, two remain.
        proxies = {
            f"px-{n}": await procs.start(
                f"a2a:{remote.url}",
                instance_id=f"px-{n}",
                heartbeat_s=0.1,
                grace_s=0.0,
                args=args,
                env=env,
            )
            for n in (1, 2, 3)
        }
        await until_agents(fleet.client, 3)
        client = fleet.client

        # Hello carries the card's skills, with the input they take.
        [info, *_] = await client.agents("shouter")
        assert [s.name for s in info.skills] == ["shout", "refuse", "linger", "greet"]
        assert info.skills[0].input_schema == msgspec.json.schema(A2AInput)
        assert info.skills[0].description == "Shout a text back, upper-cased."

        # A task forwarded (with the key from the environment) completes with the remote's result.
        task = await client.submit("shout", {"text": "hi", "data": {"n": 1}})
        done = await client.wait(task, timeout_s=15)
        assert done.state == TaskState.COMPLETED, done
        result = decode_raw(done.output, A2AResult)
        assert (result.text, result.data) == ("HI", {"shout": "HI", "data": {"n": 1}})
        # The remote's status message and artifact text reached watchers.
        seen = [item async for item in client.output(task)]
        assert "shouting" in [i.note for i in seen if isinstance(i, Progress)]
        assert "".join(i.text for i in seen if isinstance(i, OutputChunk)) == "HI"

        # A remote failure is the task's, not retried; bad input is refused here.
        refused = await client.wait(await client.submit("refuse", {"text": "x"}), timeout_s=15)
        assert refused.state == TaskState.FAILED and refused.error is not None
        assert refused.error.error_type == "RemoteTaskEnded"
        assert "refused: this agent never does that" in refused.error.detail
        assert (await client.status(refused.task_id)).attempts == 1

        # A cancelled task cancels its remote task.
        lingering = await client.submit("linger", {"text": "x"})
        [remote_id] = await remote.until("start linger", 1)
        await client.cancel(lingering, "enough")
        assert (await client.wait(lingering, timeout_s=15)).state == TaskState.CANCELED
        assert await remote.until("cancel", 1) == [remote_id]

        # Past its deadline, an attempt cancels its remote task too.
        late = await client.submit(
            "linger",
            {"text": "z"},
            timeouts=Timeouts(start_to_close_s=0.5),
            retry=RetryPolicy(maximum_attempts=1),
        )
        [_, late_id] = await remote.until("start linger", 2)
        assert (await client.wait(late, timeout_s=15)).state == TaskState.FAILED
        assert (await remote.until("cancel", 2))[1] == late_id

        # A replica drained mid-task hands it back and cancels its remote
        # task; another replica takes it over with a new remote task.
        moved = await client.submit("linger", {"text": "w"})
        [*_, first_id] = await remote.until("start linger", 3)
        holder = (await client.status(moved)).instance_id
        assert holder in proxies
        proxies.pop(holder).terminate()
        [*_, second_id] = await remote.until("start linger", 4)
        assert (await remote.until("cancel", 3))[2] == first_id
        assert (await client.status(moved)).instance_id in proxies
        await client.cancel(moved)
        assert (await remote.until("cancel", 4))[3] == second_id
        await client.wait(moved, timeout_s=15)

        # The remote killed mid-task: every attempt fails retryably, fast,
        # until the retry policy (3 attempts) ends the task failed; never hangs.
        lost = await client.submit("linger", {"text": "y"})
        await remote.until("start linger", 5)
        await remote.kill()
        ended = await client.wait(lost, timeout_s=20)
        assert ended.state == TaskState.FAILED and ended.error is not None, ended
        assert ended.error.error_type == "RemoteUnavailable"
        record = await client.status(lost)
        assert record.attempts == 3
        # Both replicas left are still serving: a proxy outlives its remote's death.
        assert len(proxies) == 2 and all(p.returncode is None for p in proxies.values())


async def test_a_card_that_cannot_be_fetched_stops_the_proxy(fleet: Fleet) -> None:
    async with AgentProcs(fleet.server.url, fleet.prefix, fleet.tmp / "procs") as procs:
        bad = await procs.start("a2a:http://127.0.0.1:9/", instance_id="px-bad")
        assert await bad.wait(20) == 1
        assert "CardUnavailable: A2A agent http://127.0.0.1:9/" in bad.log()
    # Checked before any request is made.
    with pytest.raises(CardUnavailable, match="must start with http:// or https://"):
        ProxySettings(url="ftp://example.com/")
