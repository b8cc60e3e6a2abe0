"""The lease against a real KV LEASES: late renewals of our own, takeovers, the acting window."""

import asyncio

import msgspec

from natsfleet.bus import Bus
from natsfleet.protocols import Bucket
from natsfleet.supervisor.lease import Lease, LeaseValue

TTL_S = 0.6


async def _lease(bus: Bus, holder: str) -> Lease:
    kv = await bus.kv(Bucket.LEASES)
    return Lease(kv, key="p0", partition=0, holder=holder, ttl_s=TTL_S)


async def test_a_renewal_of_ours_that_landed_late_does_not_depose_us(bus: Bus) -> None:
    """A renewal given up on locally (NATS was restarting) that reached the
    server anyway moves the entry's revision: the next renewal finds our own
    holder and epoch there and renews on it."""
    lease = await _lease(bus, "sup-a")
    assert await lease.try_acquire()
    value, revision = await lease.current()
    assert value is not None
    late = LeaseValue(holder="sup-a", epoch=lease.epoch, expires_ms=value.expires_ms + 1)
    await lease.kv.update("p0", msgspec.json.encode(late), last=revision)
    assert await lease.renew()
    assert lease.held and lease.valid()
    after, after_revision = await lease.current()
    assert (
        after is not None and after.epoch == lease.epoch and after_revision > revision + 1
    )  # ours, then the renewal


async def test_a_renewal_after_a_takeover_is_refused(bus: Bus) -> None:
    lease = await _lease(bus, "sup-a")
    assert await lease.try_acquire()
    other = await _lease(bus, "sup-b")
    assert not await other.try_acquire()  # not expired yet
    await asyncio.sleep(TTL_S + 0.1)
    assert not lease.valid()  # 2/3 ttl passed without a renewal: it stopped acting first
    assert await other.try_acquire()
    assert other.epoch == lease.epoch + 1
    assert not await lease.renew()
    assert not lease.held


async def test_the_acting_window_and_the_renewal_schedule(bus: Bus) -> None:
    lease = await _lease(bus, "sup-a")
    assert lease.remaining_s() == 0 and not lease.valid()
    assert await lease.try_acquire()
    assert 0 < lease.remaining_s() <= TTL_S * 2 / 3
    assert 0 < lease.renewal_due_s() <= TTL_S / 6
    await asyncio.sleep(TTL_S / 3)
    assert await lease.renew()
    assert lease.remaining_s() > TTL_S * 2 / 3 - 0.1  # counted from this renewal
    lease.drop()
    assert not lease.valid() and not await lease.renew()
