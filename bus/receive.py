"""A leaner receive path than nats-py's for the few subscriptions on the hot path.

nats-py hands every message to a subscription through an `asyncio.Queue` read
by one task per subscription, after parsing its headers in Python; measured
across processes that is ~7 µs of CPU per message received, more than the
rest of the path. Two things change here:

- Headers without a status line (every message we publish) are parsed by one
  regex match per line; anything unusual (a status line, a name with spaces or
  non-ASCII bytes) goes to nats-py's own parser, so the result is the same
  dict nats-py builds.
- A *direct* subscription's handler is a plain function called from the
  reader as the message is parsed: no queue, no task switch (~2.5 µs). It
  must return at once; the reply inbox (`acks.Replies`) and the pull loop
  (`pull.PullLoop`) only resolve a future or count credit and start a task.

`subscribe_direct` works on any nats-py client: on a plain one (tests, other
tools) the handler runs behind nats-py's queue as before.
"""

import logging
from collections.abc import Callable

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)

DirectHandler = Callable[[Msg], None]

_PLAIN = b"NATS/1.0\r\n"


def parse_headers(raw: bytes) -> dict[str, str] | None:
    """Headers of a plain block (`NATS/1.0` then `Name: value` lines), or None
    when the block is anything else and nats-py must parse it."""
    if not raw.startswith(_PLAIN):
        return None
    out: dict[str, str] = {}
    for line in raw[len(_PLAIN) :].split(b"\r\n"):
        if not line:
            continue
        name, colon, value = line.partition(b":")
        # Names as we publish them (letters, digits, '-'); nats-py takes the rest.
        if not colon or not name.replace(b"-", b"").isalnum():
            return None
        # The same decoding and stripping as nats-py's `_parse_header_lines`.
        out[name.decode()] = value.strip().decode("utf-8", "replace")
    return out or None


class FleetNats(NatsClient):
    """nats-py's client with direct subscriptions and a faster header parser."""

    def __init__(self) -> None:
        super().__init__()
        self._direct: dict[int, DirectHandler] = {}

    async def subscribe_direct(
        self, subject: str, handler: DirectHandler, queue: str = ""
    ) -> Subscription:
        # No callback: nats-py keeps an (unused) iterator and starts no task.
        sub = await self.subscribe(subject, queue=queue)
        self._direct[sub._id] = handler
        return sub

    async def _process_headers(self, headers: bytes) -> dict[str, str] | None:
        if not headers:
            return None
        parsed = parse_headers(headers)
        if parsed is None:
            return await super()._process_headers(headers)
        return parsed

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes
    ) -> None:
        handler = self._direct.get(sid)
        if handler is None:
            await super()._process_msg(sid, subject, reply, data, headers)
            return
        if sid not in self._subs:  # unsubscribed: forget the handler too
            del self._direct[sid]
            return
        self.stats["in_msgs"] += 1
        self.stats["in_bytes"] += len(data)
        hdr = await self._process_headers(headers)
        msg = Msg(
            _client=self,
            subject=subject.decode(),
            reply=reply.decode(),
            data=data,
            headers=hdr,
            _sid=sid,
        )
        try:
            handler(msg)
        except Exception:  # a handler bug must not stop the connection's reader
            log.exception("handler for %s failed", msg.subject)


async def subscribe_direct(
    nc: NatsClient, subject: str, handler: DirectHandler, queue: str = ""
) -> Subscription:
    """Subscribe `handler` (a plain function that returns at once) to `subject`."""
    if isinstance(nc, FleetNats):
        return await nc.subscribe_direct(subject, handler, queue)

    async def callback(msg: Msg) -> None:
        handler(msg)

    return await nc.subscribe(
        subject, queue=queue, cb=callback, pending_msgs_limit=-1, pending_bytes_limit=-1
    )
