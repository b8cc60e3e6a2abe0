"""Pipelined JetStream publishes (`Bus.publish_async`): acks as futures, CAS errors typed."""

import asyncio

import nats.errors
import nats.js.errors
import pytest

from natsfleet.bus import Bus, BusConfig, NoResponders, RequestTimeout
from natsfleet.process import NatsServer
from natsfleet.protocols import Bucket


async def test_many_in_flight_and_compare_and_set(nats_server: NatsServer, prefix: str) -> None:
    async with Bus(BusConfig(url=nats_server.url, prefix=prefix)) as bus:
        await bus.provision()
        subjects = [bus.kv_subject(Bucket.STATE, f"k{i}") for i in range(200)]
        expect_new = {"Nats-Expected-Last-Subject-Sequence": "0"}
        futures = [await bus.publish_async(s, b"v1", expect_new) for s in subjects]
        acks = await asyncio.gather(*futures)
        assert sorted(a.seq for a in acks) == list(range(1, 201))
        kv = await bus.kv(Bucket.STATE)
        assert (await kv.get("k7")).value == b"v1"
        # A second create and a write over a stale revision both fail the check.
        with pytest.raises(nats.js.errors.APIError) as failed:
            await (await bus.publish_async(subjects[0], b"v2", expect_new))
        assert failed.value.err_code in (10071, 10164)
        stale = {"Nats-Expected-Last-Subject-Sequence": "999"}
        with pytest.raises(nats.js.errors.APIError):
            await (await bus.publish_async(subjects[1], b"v2", stale))
        entry = await kv.get("k1")
        current = {"Nats-Expected-Last-Subject-Sequence": str(entry.revision)}
        ack = await (await bus.publish_async(subjects[1], b"v2", current))
        assert (await kv.get("k1")).revision == ack.seq


async def test_no_stream_and_timeout(nats_server: NatsServer, prefix: str) -> None:
    async with Bus(BusConfig(url=nats_server.url, prefix=prefix, js_timeout_s=0.2)) as bus:
        with pytest.raises(nats.js.errors.NoStreamResponseError):
            await (await bus.publish_async(f"{prefix}.nowhere", b"x"))
        # An ack that never comes (a plain subscriber swallows the message) times out.
        await bus.nc.subscribe(f"{prefix}.silent")
        with pytest.raises(nats.errors.TimeoutError):
            await (await bus.publish_async(f"{prefix}.silent", b"x"))


async def test_requests_with_many_different_timeouts_leave_nothing_behind(
    nats_server: NatsServer, prefix: str
) -> None:
    from natsfleet.protocols import Rollcall

    async with Bus(BusConfig(url=nats_server.url, prefix=prefix)) as bus:

        async def echo(message: Rollcall, _: object) -> Rollcall:
            return message

        from natsfleet.protocols import Codec

        codec = Codec[Rollcall](Rollcall)
        await bus.subscribe(f"{prefix}.echo", codec, echo)  # type: ignore[arg-type]
        for n in range(20):  # callers pick timeouts freely
            await bus.request(f"{prefix}.echo", Rollcall(supervisor_id="x"), codec,
                              timeout_s=1.0 + n / 100)  # fmt: skip
        with pytest.raises((NoResponders, RequestTimeout)):
            await bus.request(f"{prefix}.silent", Rollcall(supervisor_id="x"), codec,
                              timeout_s=0.1)  # fmt: skip
        replies = bus.transport._replies
        assert replies is not None
        assert replies._pending == {} and replies._where == {}
