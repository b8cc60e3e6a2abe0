"""Leader election per partition in KV LEASES.

The value of key `p<partition>` holds the holder, an epoch that grows with
every change of holder, and an expiry in epoch ms. Acquiring and renewing are
compare-and-set on the entry's revision, so two supervisors can never both
believe a renewal succeeded.

The rule: the holder may act only until 2/3 ttl after its last successful
renewal was *sent* (monotonic clock; `valid()`), while the expiry it wrote is
a full ttl after that moment (wall clock), and a standby can take the lease
only by a compare-and-set once that expiry has passed. So the holder is
silent at least ttl/3 before anyone else may act, whatever happens to its
process or link (that third covers clock skew between hosts and a write
already in flight). Within that window nothing forbids renewing late: the
holder renews every ttl/6 and, when a renewal fails (NATS restarting), tries
again every `retry_interval_s` until one succeeds or the window closes. A
NATS blip shorter than about ttl/2 (2/3 ttl less a renewal interval, less the
time to reconnect) therefore does not end a term; a longer one does.
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
        return self.ttl_s / 6

    @property
    def retry_interval_s(self) -> float:
        """Time between renewal attempts while they fail (a NATS blip)."""
        return min(self.ttl_s / 30, 0.1)

    def remaining_s(self) -> float:
        """Time this process may still act without another renewal (<= 0: none)."""
        if self._valid_from is None:
            return 0.0
        return self._valid_from + self.ttl_s * 2 / 3 - time.monotonic()

    def renewal_due_s(self) -> float:
        """Time until the next renewal is due (counted from when the last one was sent)."""
        if self._valid_from is None:
            return 0.0
        return self._valid_from + self.renew_interval_s - time.monotonic()

    def valid(self) -> bool:
        """True while this process may act: less than 2/3 ttl since the last renewal."""
        return self.remaining_s() > 0

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
        """Extend the lease; False (and no longer held) if someone else took it.

        Raises what NATS raises (a timeout while it restarts): the caller
        tries again while `valid()`.
        """
        if self._revision is None:
            return False
        sent = time.monotonic()
        new = LeaseValue(
            holder=self.holder, epoch=self.epoch, expires_ms=_now_ms() + int(self.ttl_s * 1000)
        )
        try:
            revision = await self.kv.update(self.key, _ENCODER.encode(new), last=self._revision)
        except js_errors.KeyWrongLastSequenceError:
            if not await self._own_late_write():
                log.warning("lease %s lost: epoch %d was superseded", self.key, self.epoch)
                self.drop()
                return False
            # An earlier renewal of ours landed after we gave up waiting for
            # it (sent just before a disconnect): its expiry is no later than
            # this one's, so `_valid_from` stays; renew again on its revision.
            revision = await self.kv.update(self.key, _ENCODER.encode(new), last=self._revision)
        if not self.held:  # dropped (the term ended) while this was in flight
            return False
        self._revision = revision
        self._valid_from = sent
        return True

    async def _own_late_write(self) -> bool:
        """Whether the entry (which moved on) is still ours; if so take its revision.

        Only this process writes our holder with our epoch: a standby that
        takes over writes its own holder and a higher epoch.
        """
        value, revision = await self.current()
        if value is None or value.holder != self.holder or value.epoch != self.epoch:
            return False
        self._revision = revision
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
