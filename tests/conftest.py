"""Shared fixtures: a real nats-server (JetStream on, random port, temp store) per test."""

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from natsfleet.bus import Bus, BusConfig
from natsfleet.process.server import NatsServer


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


@pytest.fixture
async def bus(nats_server: NatsServer, prefix: str) -> AsyncIterator[Bus]:
    """A connected Bus with the fleet's streams and buckets provisioned."""
    connected = await Bus(BusConfig(url=nats_server.url, prefix=prefix), role="test").connect()
    await connected.provision()
    try:
        yield connected
    finally:
        await connected.close()


@pytest.fixture
def spans() -> Iterator[Any]:
    """natsfleet tracing on, into an in-memory exporter, for this test only."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from natsfleet.telemetry import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider, "natsfleet-test")
    try:
        yield exporter
    finally:
        tracing.uninstall()
