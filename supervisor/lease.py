"""Leader election per partition in KV LEASES.

The value of key `p<partition>` holds the holder, an epoch that grows with
every change of holder, and an expiry in epoch ms. Acquiring and renewing are
compare-and-set on the entry's revision, so two supervisors can never both
believe a renewal succeeded. The holder renews every ttl/3 and stops acting
2/3 ttl after its last successful renewal (measured on the monotonic clock,
from before the renewal was sent), so it is silent a full third of the ttl
before any standby may take over, whatever happens to its process or link.
"""

import logging
import time

import msgspec
from nats.js import errors as js_errors
from nats.js.kv import KeyValue

from natsfleet.supervisor.errors import NotLeader

log = logging.getLogger(__name__)


class LeaseValue(msgspec.Struct, frozen=True, kw_only=True):
    holder: str
    epoch: int
    expires_ms: int


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(LeaseValue)


def _now_ms() -> int:
    return int(time.time() * 1000)


class Lease:
    """One supervisor's view of one partition's lease."""

    def __init__(self, kv: KeyValue, *, key: str, partition: int, holder: str, ttl_s: float):
        self.kv = kv
        self.key = key
        self.partition = partition
        self.holder = holder
        self.ttl_s = ttl_s
        self.epoch = 0
        self._revision: int | None = None
        # Monotonic time the last successful acquire/renew was *sent*.
        self._valid_from: float | None = None

    @property
    def held(self) -> bool:
        return self._valid_from is not None

    @property
    def renew_interval_s(self) -> float:
        return self.ttl_s / 3

    def valid(self) -> bool:
        """True while this process may act: less than 2/3 ttl since the last renewal."""
        if self._valid_from is None:
            return False
        return time.monotonic() - self._valid_from < self.ttl_s * 2 / 3

    def check(self) -> None:
        """Raise NotLeader unless `valid()`; called before every write."""
        if not self.valid():
            raise NotLeader(self.partition)

    async def current(self) -> tuple[LeaseValue | None, int]:
        """The stored lease and its revision (None, 0 when absent or deleted)."""
        try:
            entry = await self.kv.get(self.key)
        except js_errors.KeyNotFoundError:
            return None, 0
        if not entry.value:
            return None, entry.revision or 0
        try:
            return _DECODER.decode(entry.value), entry.revision or 0
        except msgspec.DecodeError:
            log.warning("lease %s holds an unreadable value; treating it as lapsed", self.key)
            return None, entry.revision or 0

    async def try_acquire(self) -> bool:
        """Take the lease if it is free or has lapsed; True if this process now holds it."""
        value, revision = await self.current()
        now_ms = _now_ms()
        if value is not None and value.holder != self.holder and value.expires_ms > now_ms:
            return False
        epoch = (value.epoch if value is not None else 0) + 1
        sent = time.monotonic()
        new = LeaseValue(
            holder=self.holder, epoch=epoch, expires_ms=now_ms + int(self.ttl_s * 1000)
        )
        try:
            if revision == 0:
                self._revision = await self.kv.create(self.key, _ENCODER.encode(new))
            else:
                self._revision = await self.kv.update(self.key, _ENCODER.encode(new), last=revision)
        except js_errors.KeyWrongLastSequenceError:
            return False  # another supervisor was quicker
        self.epoch = epoch
        self._valid_from = sent
        log.info("lease %s acquired by %s with epoch %d", self.key, self.holder, epoch)
        return True

    async def renew(self) -> bool:
        """Extend the lease; False (and no longer held) if someone else took it."""
        if self._revision is None:
            return False
        sent = time.monotonic()
        new = LeaseValue(
            holder=self.holder, epoch=self.epoch, expires_ms=_now_ms() + int(self.ttl_s * 1000)
        )
        try:
            self._revision = await self.kv.update(
                self.key, _ENCODER.encode(new), last=self._revision
            )
        except js_errors.KeyWrongLastSequenceError:
            log.warning("lease %s lost: epoch %d was superseded", self.key, self.epoch)
            self.drop()
            return False
        self._valid_from = sent
        return True

    def drop(self) -> None:
        """Forget the lease locally (deposed, or giving up)."""
        self._valid_from = None
        self._revision = None

    async def release(self) -> None:
        """Let a standby take over at once (on SIGTERM): expire the lease by CAS."""
        revision = self._revision
        self.drop()
        if revision is None:
            return
        lapsed = LeaseValue(holder=self.holder, epoch=self.epoch, expires_ms=0)
        try:
            await self.kv.update(self.key, _ENCODER.encode(lapsed), last=revision)
            log.info("lease %s released (epoch %d)", self.key, self.epoch)
        except Exception as exc:  # it lapses on its own anyway
            log.warning("lease %s release failed: %s", self.key, exc)
