"""Fixtures for the loop: a wire-format LLM server and an in-process LoopAgent
instance driven by the test's stand-in supervisor (tests/agents/driver.py)."""

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from natsfleet.agents import Agent, AgentRuntime
from natsfleet.agents.llm import LLMConfig, config_from_mapping
from natsfleet.agents.llm_binding import LLMBinding
from natsfleet.bus import BusConfig
from natsfleet.process import NatsServer
from tests.agents.driver import Driver, driver
from tests.llm.wire import WireServer
from tests.loop_agents import LoopAgent

MODEL = "loop-model"


def llm_config(wire: WireServer, kind: str = "openai", **model: Any) -> LLMConfig:
    """One deployment named MODEL on the wire server; the response cache off (each
    model call must reach the server, where the test counts it)."""
    base_url = wire.url + "/v1" if kind == "openai" else wire.url
    return config_from_mapping(
        {
            "providers": {kind: {"kind": kind, "base_url": base_url, "require_key": False}},
            "models": [{"name": MODEL, "provider": kind, "model": MODEL, "tier": "small", **model}],
            "cache": {"enabled": False},
            "routing": {"max_rounds": 1},
        }
    )


@pytest.fixture
async def wire() -> AsyncIterator[WireServer]:
    server = await WireServer().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The side-effect log of the test tools (tests/loop_agents.py); the gate beside it."""
    path = tmp_path / "effects.log"
    monkeypatch.setenv("NATSFLEET_TEST_EFFECTS", str(path))
    monkeypatch.setenv("NATSFLEET_TEST_GATE", str(tmp_path / "gate"))
    return path


def lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


class Loops:
    """A driver plus in-process instances of `agent_class` (LoopAgent) on one fleet."""

    agent_class: type[Agent] = LoopAgent

    def __init__(self, d: Driver, url: str, prefix: str, stack: contextlib.AsyncExitStack):
        self.d = d
        self.url = url
        self.prefix = prefix
        self._stack = stack

    async def instance(self, instance_id: str, config: LLMConfig | None = None) -> AgentRuntime:
        runtime = AgentRuntime(
            self.agent_class(),
            bus_config=BusConfig(url=self.url, prefix=self.prefix),
            instance_id=instance_id,
            llm=LLMBinding(config, use_cache=False),
        )
        await self._stack.enter_async_context(runtime)
        self._stack.callback(lambda: runtime.shutdown(immediate=True))
        await self.d.hello(instance_id)
        return runtime


@pytest.fixture
async def loops(nats_server: NatsServer, prefix: str) -> AsyncIterator[Loops]:
    async with contextlib.AsyncExitStack() as stack:
        d = await stack.enter_async_context(driver(nats_server.url, prefix))
        yield Loops(d, nats_server.url, prefix, stack)


Make = Callable[..., LLMConfig]
