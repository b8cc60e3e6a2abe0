"""Shared fixtures: a real nats-server (JetStream on, random port, temp store) per test."""

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from natsfleet.bus.server import NatsServer


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    server = NatsServer(store_dir=tmp_path / "js")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def prefix() -> str:
    """A unique subject prefix per test keeps tests independent."""
    return f"t{secrets.token_hex(4)}"
