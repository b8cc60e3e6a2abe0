"""Replies as futures: requests and pipelined JetStream publishes on one inbox.

`nc.request` costs a fresh inbox token, a `wait_for` (a timer and a task
switch) per message, and a JetStream ack is parsed by `json.loads` into a
dataclass. Here every request carries a reply subject under one wildcard
subscription and its answer resolves a future; one timer per timeout value
expires the overdue ones (issued in order with the same timeout, the oldest
come first). The caller awaits the future when it needs the answer, so a batch
of writes costs one flush and one round trip instead of one of each per write.
"""

import asyncio
import itertools
from typing import TYPE_CHECKING, Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg

from natsfleet.bus.incoming import header

if TYPE_CHECKING:
    from natsfleet.bus.transport import Transport

_NO_RESPONDERS = "503"
_SWEEP_S = 0.05


class NoReply(nats.errors.Error):
    """Nobody subscribes to the request's subject (the server's 503 status)."""


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class StreamAck(msgspec.Struct, frozen=True):
    """A stream's ack of a publish (the fields of nats-py's `PubAck`; `error` is
    always None once a future gives it)."""

    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    domain: str | None = None
    error: _ApiError | None = None


_DECODE = msgspec.json.Decoder(StreamAck).decode


def _api_error(error: _ApiError) -> nats.js.errors.APIError:
    try:
        nats.js.errors.APIError.from_error(msgspec.structs.asdict(error))
    except nats.js.errors.APIError as exc:  # from_error raises the typed subclass
        return exc
    return nats.js.errors.APIError(**msgspec.structs.asdict(error))  # pragma: no cover


class Replies:
    """Requests on one connection whose replies arrive as futures.

    `request` gives the reply message; `publish_js` the decoded stream ack.
    """

    def __init__(self, transport: "Transport", js_timeout_s: float) -> None:
        self._transport = transport
        self._js_timeout_s = js_timeout_s
        self._prefix = ""
        self._ids = itertools.count(1)
        # timeout -> {token: entry}; insertion order is deadline order.
        self._pending: dict[float, dict[str, _Entry]] = {}
        self._where: dict[str, float] = {}
        self._sweep: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        self._prefix = self._transport.new_inbox() + "."
        await self._transport.subscribe(self._prefix + "*", self._on_reply)

    async def request(
        self, subject: str, payload: bytes, headers: dict[str, str] | None, timeout_s: float
    ) -> "asyncio.Future[Msg]":
        """Send; the future gives the reply, or raises `NoReply` or `nats.errors.TimeoutError`."""
        future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        await self._send(subject, payload, headers, _Entry(future, timeout_s, ack=False))
        return future

    async def publish_js(
        self, subject: str, payload: bytes, headers: dict[str, str] | None
    ) -> "asyncio.Future[StreamAck]":
        """JetStream publish; the future gives the stream's ack or raises its error."""
        future: asyncio.Future[StreamAck] = asyncio.get_running_loop().create_future()
        await self._send(subject, payload, headers, _Entry(future, self._js_timeout_s, ack=True))
        return future

    async def _send(
        self, subject: str, payload: bytes, headers: dict[str, str] | None, entry: "_Entry"
    ) -> None:
        loop = asyncio.get_running_loop()
        token = str(next(self._ids))
        entry.deadline = loop.time() + entry.timeout_s
        self._pending.setdefault(entry.timeout_s, {})[token] = entry
        self._where[token] = entry.timeout_s
        try:
            await self._transport.publish(subject, payload, headers, self._prefix + token)
        except BaseException:
            self._pop(token)
            raise
        if self._sweep is None:
            self._sweep = loop.call_later(_SWEEP_S, self._expire)

    def _pop(self, token: str) -> "_Entry | None":
        timeout_s = self._where.pop(token, None)
        if timeout_s is None:
            return None
        pending = self._pending[timeout_s]
        entry = pending.pop(token, None)
        if not pending:  # callers choose timeouts freely: keep no empty buckets
            del self._pending[timeout_s]
        return entry

    def _on_reply(self, msg: Msg) -> None:
        entry = self._pop(msg.subject[len(self._prefix) :])
        if entry is None or entry.future.done():
            return
        future = entry.future
        if not msg.data and header(msg.headers, "Status") == _NO_RESPONDERS:
            future.set_exception(nats.js.errors.NoStreamResponseError() if entry.ack else NoReply())
        elif not entry.ack:
            future.set_result(msg)
        else:
            _settle_ack(msg, future)

    def _expire(self) -> None:
        self._sweep = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for timeout_s, pending in list(self._pending.items()):
            while pending:
                token, entry = next(iter(pending.items()))
                if entry.deadline > now:
                    break
                del pending[token]
                del self._where[token]
                if not entry.future.done():
                    entry.future.set_exception(nats.errors.TimeoutError())
            if not pending:
                del self._pending[timeout_s]
        if self._where:
            self._sweep = loop.call_later(_SWEEP_S, self._expire)


class _Entry:
    __slots__ = ("ack", "deadline", "future", "timeout_s")

    def __init__(self, future: "asyncio.Future[Any]", timeout_s: float, *, ack: bool) -> None:
        self.future = future
        self.timeout_s = timeout_s
        self.deadline = 0.0
        self.ack = ack


def _settle_ack(msg: Msg, future: "asyncio.Future[Any]") -> None:
    try:
        ack = _DECODE(msg.data)
    except msgspec.DecodeError as err:
        future.set_exception(nats.errors.Error(f"unreadable stream ack: {err}"))
        return
    if ack.error is not None:
        future.set_exception(_api_error(ack.error))
    else:
        future.set_result(ack)  # no copy into nats-py's dataclass: same fields
