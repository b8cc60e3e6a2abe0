"""A connection closed for good is `ConnectionLost`; a blip is not; connecting is bounded
on request and stoppable (real nats-server, real sockets)."""

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from natsfleet.bus import Bus, BusConfig, ConnectionLost, Unreachable
from natsfleet.process import NatsServer


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on: bound (so nobody else takes it), not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def _forever() -> None:
    await asyncio.Event().wait()


async def _reconnected(bus: Bus) -> None:
    while bus.stats.reconnects == 0:
        await asyncio.sleep(0.02)


async def test_a_fatal_server_error_is_connection_lost(nats_server: NatsServer) -> None:
    bus = await Bus(BusConfig(url=nats_server.url)).connect()
    try:
        # A control line over the server's limit: it answers -ERR and closes the
        # connection; nats-py does not reconnect after that.
        await bus.nc.publish("x." + "y" * 5000, b"")
        with pytest.raises(ConnectionLost, match="maximum control line") as caught:
            await asyncio.wait_for(bus.guard(_forever()), 5)
        assert caught.value.exit_code == 6
        assert bus.lost is not None and "maximum control line" in bus.lost.reason
    finally:
        await bus.close()


async def test_giving_up_reconnecting_is_connection_lost(nats_server: NatsServer) -> None:
    bus = await Bus(BusConfig(url=nats_server.url, max_reconnect_attempts=2)).connect()
    try:
        await nats_server.stop()
        started = time.monotonic()
        with pytest.raises(ConnectionLost, match="gave up reconnecting after 2 attempts"):
            await asyncio.wait_for(bus.guard(_forever()), 10)
        assert time.monotonic() - started < 5
    finally:
        await bus.close()


async def test_a_blip_reconnects_and_is_not_lost(nats_server: NatsServer) -> None:
    bus = await Bus(BusConfig(url=nats_server.url, max_reconnect_attempts=40)).connect()
    try:
        await nats_server.restart()
        await bus.guard(asyncio.wait_for(_reconnected(bus), 10))
        # Guarded work still runs: a round trip over the reconnected connection.
        await bus.guard(bus.nc.flush(timeout=5))
        assert bus.lost is None
    finally:
        await bus.close()
    assert bus.lost is None  # closing on purpose is not a loss


async def test_work_that_ends_first_returns_or_raises_its_own(nats_server: NatsServer) -> None:
    async def boom() -> None:
        raise KeyError("mine")

    async with Bus(BusConfig(url=nats_server.url)) as bus:
        assert await bus.guard(asyncio.sleep(0, result=7)) == 7
        with pytest.raises(KeyError, match="mine"):
            await bus.guard(boom())


async def test_a_bounded_connect_to_a_closed_port_is_unreachable(closed_port: int) -> None:
    bus = Bus(BusConfig(url=f"nats://user:hunter22@127.0.0.1:{closed_port}"))
    started = time.monotonic()
    with pytest.raises(Unreachable) as caught:
        await bus.connect(within_s=0.5)
    elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 1.5
    message = str(caught.value)
    assert f"cannot reach NATS at nats://127.0.0.1:{closed_port} within 0.5 s" in message
    assert "hunter22" not in message and "connection refused" in message
    assert caught.value.exit_code == 5 and not bus.is_connected
    await bus.close()


async def test_reconnect_limit_also_bounds_the_first_connect(closed_port: int) -> None:
    bus = Bus(BusConfig(url=f"nats://127.0.0.1:{closed_port}", max_reconnect_attempts=1))
    with pytest.raises(Unreachable, match="gave up"):
        await asyncio.wait_for(bus.connect(), 5)


async def test_connect_unless_stops_when_asked(closed_port: int) -> None:
    bus = Bus(BusConfig(url=f"nats://127.0.0.1:{closed_port}"))
    stop = asyncio.Event()
    connecting = asyncio.ensure_future(bus.connect_unless(stop))
    await asyncio.sleep(0.3)  # a few refused attempts: it keeps trying
    assert not connecting.done()
    stop.set()
    assert await asyncio.wait_for(connecting, 2) is False
    assert not bus.is_connected


async def test_connect_unless_connects(nats_server: NatsServer) -> None:
    bus = Bus(BusConfig(url=nats_server.url))
    assert await bus.connect_unless(asyncio.Event()) is True
    assert bus.is_connected
    await bus.close()


def test_max_reconnect_attempts_from_the_environment() -> None:
    env = {"NATS_MAX_RECONNECT_ATTEMPTS": "7"}
    assert BusConfig.from_env(env).max_reconnect_attempts == 7
    assert BusConfig.from_env({}).max_reconnect_attempts == -1
    with pytest.raises(ValueError, match="NATS_MAX_RECONNECT_ATTEMPTS"):
        BusConfig.from_env({"NATS_MAX_RECONNECT_ATTEMPTS": "many"})
