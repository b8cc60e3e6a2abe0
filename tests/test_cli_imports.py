"""An agent process started as `natsfleet agent run` does not import the
supervisor, deploy, gateway or demo code, nor any model or server SDK: the
CLI loads a verb's module only when that verb runs (cli/main.py `COMMANDS`),
and an idle agent holds only what it uses (docs/performance.md, "Many instances")."""

import asyncio
from pathlib import Path

from natsfleet.bus import Bus
from natsfleet.process import NatsServer
from tests.procs import AgentProcs

#: Packages an idle agent has no use for, each tens of modules and MiBs.
NOT_IN_AN_AGENT = (
    "natsfleet.supervisor",
    "natsfleet.deploy",
    "natsfleet.gateway",
    "natsfleet.cli.demo_cmd",
    "natsfleet.cli.up_cmd",
    "natsfleet.cli.task_cmd",
    "anthropic",
    "openai",
    "mcp",
    "a2a",
    "uvicorn",
    "starlette",
    "rich",
)


async def test_an_idle_agent_process_imports_no_heavy_module(
    nats_server: NatsServer, bus: Bus, prefix: str, tmp_path: Path
) -> None:
    out = tmp_path / "modules.txt"
    hello = asyncio.Event()

    async def on_hello(_: object) -> None:
        hello.set()

    await bus.nc.subscribe(bus.subjects.hello("idle", "idle-1"), cb=on_hello)
    async with AgentProcs(nats_server.url, prefix, tmp_path) as procs:
        agent = await procs.start(
            "tests.modules_agent:Idle",
            instance_id="idle-1",
            env={"NATSFLEET_TEST_MODULES_OUT": str(out)},
        )
        await asyncio.wait_for(hello.wait(), 20)
        agent.terminate()
        assert await agent.wait(10) == 0, agent.log()
    modules = set(out.read_text().split())
    assert "natsfleet.agents.runtime" in modules  # it did run an agent
    loaded = sorted(
        m for m in modules for heavy in NOT_IN_AN_AGENT if m == heavy or m.startswith(heavy + ".")
    )
    assert loaded == []


def test_every_verb_is_where_commands_says() -> None:
    import importlib

    from natsfleet.cli.main import COMMANDS

    for name, (module, attr) in COMMANDS.items():
        command = getattr(importlib.import_module(f"natsfleet.cli.{module}"), attr)
        assert command.name == name
