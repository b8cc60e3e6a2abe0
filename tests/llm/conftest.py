"""Fixtures for the LLM layer: the local wire server and routers built on it."""

import importlib.util
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from natsfleet.agents.llm import LLMConfig, Router, config_from_mapping

_spec = importlib.util.spec_from_file_location(
    "natsfleet_llm_wire", Path(__file__).with_name("wire.py")
)
assert _spec is not None and _spec.loader is not None
wire_module = importlib.util.module_from_spec(_spec)
sys.modules["natsfleet_llm_wire"] = wire_module
_spec.loader.exec_module(wire_module)

#: Fast policies so fallback, cooldown and Retry-After tests run in milliseconds.
FAST = {
    "routing": {"retry_backoff_s": 0.01, "max_wait_s": 1.0},
    "cooldown": {"failures": 2, "window_s": 10.0, "cooldown_s": 5.0, "quota_cooldown_s": 5.0},
}


@pytest.fixture
async def wire() -> AsyncIterator[Any]:
    server = await wire_module.WireServer().start()
    try:
        yield server
    finally:
        await server.stop()


def model_entry(name: str, provider: str, tier: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "provider": provider, "model": name, "tier": tier, **extra}


@pytest.fixture
def make_config(wire: Any) -> Callable[..., LLMConfig]:
    """Config with an `anthropic` and an `openai` provider on the wire server."""

    def make(models: list[dict[str, Any]], **sections: Any) -> LLMConfig:
        data: dict[str, Any] = {
            "providers": {
                "anthropic": {"kind": "anthropic", "base_url": wire.url, "api_key_env": "T_KEY"},
                "openai": {"kind": "openai", "base_url": wire.url + "/v1", "api_key_env": "T_KEY"},
            },
            "models": models,
            **{k: dict(v) for k, v in FAST.items()},
        }
        for key, value in sections.items():
            data[key] = {**data.get(key, {}), **value}
        return config_from_mapping(data)

    return make


@pytest.fixture
async def make_router(
    make_config: Callable[..., LLMConfig],
) -> AsyncIterator[Callable[..., Router]]:
    routers: list[Router] = []

    def make(models: list[dict[str, Any]], cache: Any = None, **sections: Any) -> Router:
        router = Router.from_config(
            make_config(models, **sections), cache=cache, env={"T_KEY": "k"}
        )
        routers.append(router)
        return router

    yield make
    for router in routers:
        await router.aclose()
