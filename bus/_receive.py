"""A leaner receive path than nats-py's for the few subscriptions on the hot path.

nats-py hands every message to a subscription through an `asyncio.Queue` read
by one task per subscription, after parsing its headers in Python; measured
across processes that is ~7 µs of CPU per message received, more than the
rest of the path. `FleetNats`, the client the bus connects with, changes
three things:

- Headers without a status line (every message we publish) are split and
  decoded with no per-name generator; anything unusual (a status line, a name
  with spaces or other characters) goes to nats-py's own parser, so the
  result is the same dict nats-py builds.
- A *direct* subscription's handler is a plain function called from the
  reader as the message is parsed: no queue, no task switch (~2.5 µs). It
  must return at once; the reply inbox (`acks.Replies`) and the pull loop
  (`pull.PullLoop`) only resolve a future or count credit and start a task.
- The protocol parser (`FastParser`) reads MSG/HMSG lines without regexes
  and hands every other operation to nats-py's parser.

The private names of nats-py used here are `INTERNALS` (client) and
`PARSER_INTERNALS`; the fast transport (bus/_fast.py) is chosen only when they
all exist.
"""

import logging
from collections.abc import Callable

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import ProtocolError
from nats.protocol.parser import (
    AWAITING_CONTROL_LINE,
    AWAITING_MSG_PAYLOAD,
    MAX_CONTROL_LINE_SIZE,
    Parser,
)

log = logging.getLogger(__name__)

DirectHandler = Callable[[Msg], None]

#: nats-py client names used here: overridden (`_process_msg`,
#: `_process_headers`, `_remove_sub`) or read (`_sid`, `_subs`, `_ps`, `stats`).
INTERNALS = ("_process_msg", "_process_headers", "_remove_sub", "_sid", "_subs", "_ps", "stats")
#: nats-py parser names FastParser reads and writes.
PARSER_INTERNALS = ("buf", "state", "needed", "header_needed", "msg_arg", "nc", "reset", "parse")

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


_M, _H = ord("M"), ord("H")


class FastParser(Parser):
    """nats-py's protocol parser with MSG and HMSG read without regexes.

    nats-py matches two regexes per message (MSG first, then HMSG) and cuts
    the front off its buffer twice; here a control line is found with one
    `find` and split once, and the buffer is walked by index. Anything but
    MSG/HMSG (PING, PONG, +OK, -ERR, INFO, a malformed line) hands the rest of
    the buffer to nats-py's own parser, which goes on from there.
    """

    def reset(self) -> None:
        super().reset()
        # Bumped on reset (a reconnect): data read before it is dropped.
        self.generation = getattr(self, "generation", 0) + 1

    async def parse(self, data: bytes = b"") -> None:
        if self.buf:
            self.buf.extend(data)
            if self.state == AWAITING_MSG_PAYLOAD and len(self.buf) < self.needed + 2:
                return  # a large payload still arriving: no copy per read
            buf = bytes(self.buf)
        else:
            buf = data
        self.buf = bytearray()
        generation = self.generation
        process = self.nc._process_msg
        pos, end = 0, len(buf)
        handoff = False  # the next control line is nats-py's to read
        while pos < end:
            if self.state == AWAITING_MSG_PAYLOAD:
                needed = self.needed
                if end - pos < needed + 2:
                    break
                split = self.header_needed
                headers = buf[pos : pos + split] if split else None
                payload = buf[pos + split : pos + needed]
                pos += needed + 2
                self.header_needed = 0
                self.state = AWAITING_CONTROL_LINE
                arg = self.msg_arg
                await process(arg["sid"], arg["subject"], arg["reply"], payload, headers)
                if self.generation != generation:
                    return  # reset meanwhile: the rest belongs to the old connection
                continue
            ours = buf[pos] in (_M, _H)  # else PING, PONG, +OK, -ERR, INFO or garbage
            eol = buf.find(b"\r\n", pos, pos + MAX_CONTROL_LINE_SIZE)
            if not ours or eol < 0:  # (no line end yet: wait, unless past the max)
                handoff = not ours or end - pos >= MAX_CONTROL_LINE_SIZE
                break
            args = buf[pos:eol].split()
            with_reply = len(args) == (5 if args[0] == b"MSG" else 6)
            if (args[0], len(args) - with_reply) not in ((b"MSG", 4), (b"HMSG", 5)):
                handoff = True  # malformed: nats-py raises its ProtocolError
                break
            try:
                needed = int(args[-1])
                split = int(args[-2]) if args[0] == b"HMSG" else 0
                sid = int(args[2])
            except ValueError:
                raise ProtocolError("nats: malformed MSG") from None
            subject, reply = args[1], args[3] if with_reply else b""
            pos = eol + 2
            if end - pos < needed + 2:  # the payload is still to come
                self.needed, self.header_needed = needed, split
                self.msg_arg = {"subject": subject, "sid": sid, "reply": reply}
                self.state = AWAITING_MSG_PAYLOAD
                break
            headers = buf[pos : pos + split] if split else None
            payload = buf[pos + split : pos + needed]
            pos += needed + 2
            await process(sid, subject, reply, payload, headers)
            if self.generation != generation:
                return
        self.buf = bytearray(buf[pos:])
        if handoff:
            await super().parse()


class FleetNats(NatsClient):
    """nats-py's client with direct subscriptions and faster parsers."""

    def __init__(self) -> None:
        super().__init__()
        self._direct: dict[int, DirectHandler] = {}
        self._ps = FastParser(self)

    async def subscribe_direct(
        self, subject: str, handler: DirectHandler, queue: str = ""
    ) -> Subscription:
        """Subscribe `handler` (see the module's doc). Not for `unsubscribe(limit=)`,
        `next_msg()` or `messages`: a direct subscription has no queue."""
        # The handler is in place before the SUB goes out (nats-py takes the
        # next sid before its first await), so no message can miss it.
        sid = self._sid + 1
        self._direct[sid] = handler
        try:
            # No callback: nats-py keeps an (unused) iterator and starts no task.
            sub = await self.subscribe(subject, queue=queue)
        except BaseException:
            self._direct.pop(sid, None)
            raise
        if sub._id != sid:  # pragma: no cover - a nats-py that numbers differently
            self._direct[sub._id] = self._direct.pop(sid)
        return sub

    def _remove_sub(self, sid: int, max_msgs: int = 0) -> None:
        self._direct.pop(sid, None)
        super()._remove_sub(sid, max_msgs)

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
        sub = self._subs.get(sid)
        if sub is None:  # unsubscribed: forget the handler too
            del self._direct[sid]
            return
        sub._received += 1
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
