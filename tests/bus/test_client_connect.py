"""FleetClient as the README uses it: connected from the environment, closed by `async with`."""

import pytest

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient
from natsfleet.process import NatsServer


async def test_connect_from_env_and_async_with_closes_its_bus(
    nats_server: NatsServer, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NATS_URL", nats_server.url)
    monkeypatch.setenv("NATSFLEET_PREFIX", prefix)
    async with Bus(BusConfig(url=nats_server.url, prefix=prefix)) as setup:
        await setup.provision()
    async with await FleetClient.connect() as client:
        assert client.bus.is_connected
        assert client.bus.config.prefix == prefix and client.bus.config.url == nats_server.url
        # It works: a keyed submit claims its key in the fleet's IDEM bucket.
        task_id = await client.submit("echo", {"n": 1}, key="readme")
        assert task_id == await client.submit("echo", {"n": 1}, key="readme")
        bus = client.bus
    assert not bus.is_connected  # the client opened it, so the client closed it


async def test_from_env_connects_on_enter_and_overrides_win(
    nats_server: NatsServer, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NATS_URL", "nats://127.0.0.1:1")
    monkeypatch.setenv("NATSFLEET_PREFIX", "not-this-one")
    client = FleetClient.from_env(url=nats_server.url, prefix=prefix)
    assert not client.bus.is_connected
    async with client:
        assert client.bus.is_connected and client.subjects.prefix == prefix
    assert not client.bus.is_connected
    await client.close()  # idempotent


async def test_a_client_over_a_given_bus_leaves_it_open(bus: Bus) -> None:
    async with FleetClient(bus) as client:
        assert client.bus is bus
    assert bus.is_connected  # the caller's bus: the caller closes it
