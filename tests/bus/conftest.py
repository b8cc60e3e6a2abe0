from collections.abc import AsyncIterator

import pytest

from natsfleet.bus import Bus, BusConfig, NatsServer


@pytest.fixture
async def bus(nats_server: NatsServer, prefix: str) -> AsyncIterator[Bus]:
    connected = await Bus(BusConfig(url=nats_server.url, prefix=prefix), role="test").connect()
    await connected.provision()
    try:
        yield connected
    finally:
        await connected.close()
