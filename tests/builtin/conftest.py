"""Fixtures for the built-in agents: the LLM wire server and routers on it."""

import importlib.util
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from natsfleet.agents.llm import Router, config_from_mapping

_WIRE = Path(__file__).resolve().parents[1] / "llm" / "wire.py"
_spec = importlib.util.spec_from_file_location("natsfleet_builtin_wire", _WIRE)
assert _spec is not None and _spec.loader is not None
wire_module = importlib.util.module_from_spec(_spec)
sys.modules["natsfleet_builtin_wire"] = wire_module
_spec.loader.exec_module(wire_module)


def wire_llm_table(url: str, flavour: str) -> dict[str, Any]:
    """An `[llm]` table with one medium and one small model on the wire server."""
    base = url if flavour == "anthropic" else url + "/v1"
    return {
        "providers": {"p": {"kind": flavour, "base_url": base, "api_key_env": "WIRE_KEY"}},
        "models": [
            {"name": "m-small", "provider": "p", "model": "m-small", "tier": "small",
             "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 5.0},
            {"name": "m-medium", "provider": "p", "model": "m-medium", "tier": "medium",
             "input_usd_per_mtok": 3.0, "output_usd_per_mtok": 15.0},
        ],
        "routing": {"retry_backoff_s": 0.01, "max_wait_s": 1.0},
    }  # fmt: skip


@pytest.fixture
async def wire() -> AsyncIterator[Any]:
    server = await wire_module.WireServer().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(params=["anthropic", "openai"])
async def wire_router(wire: Any, request: Any) -> AsyncIterator[Callable[[], Router]]:
    routers: list[Router] = []

    def make() -> Router:
        config = config_from_mapping(wire_llm_table(wire.url, request.param))
        router = Router.from_config(config, env={"WIRE_KEY": "k"})
        routers.append(router)
        return router

    yield make
    for router in routers:
        await router.aclose()
