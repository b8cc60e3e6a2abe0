"""Pipelined JetStream publishes: many in flight, each stream ack a future.

`nc.request` per JetStream publish costs a fresh inbox token, a timer and a
`wait_for` per message, and the ack is parsed by `json.loads` into a
dataclass. Here every publish carries a reply subject under one wildcard
subscription, the ack is decoded by msgspec, and one timer expires all
overdue acks (they are issued in order with the same timeout, so the oldest
come first). The caller awaits the future when it needs the ack, so a batch of
writes costs one flush and one round trip instead of one of each per write.
"""

import asyncio
import itertools

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import api as js_api

_NO_RESPONDERS = "503"
_SWEEP_S = 0.05


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _PubAck(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    domain: str | None = None
    error: _ApiError | None = None


_DECODE = msgspec.json.Decoder(_PubAck).decode


def _api_error(error: _ApiError) -> nats.js.errors.APIError:
    try:
        nats.js.errors.APIError.from_error(msgspec.structs.asdict(error))
    except nats.js.errors.APIError as exc:  # from_error raises the typed subclass
        return exc
    return nats.js.errors.APIError(**msgspec.structs.asdict(error))  # pragma: no cover


class AckPipe:
    """JetStream publishes on one connection whose acks arrive as futures."""

    def __init__(self, nc: NatsClient, timeout_s: float) -> None:
        self._nc = nc
        self._timeout_s = timeout_s
        self._prefix = ""
        self._ids = itertools.count(1)
        # token -> (future, deadline); insertion order is deadline order.
        self._pending: dict[str, tuple[asyncio.Future[js_api.PubAck], float]] = {}
        self._sweep: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        self._prefix = self._nc.new_inbox() + "."
        await self._nc.subscribe(self._prefix + "*", cb=self._on_ack)

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None
    ) -> asyncio.Future[js_api.PubAck]:
        """Send; the future gives the stream's ack or raises the JetStream error."""
        loop = asyncio.get_running_loop()
        token = str(next(self._ids))
        future: asyncio.Future[js_api.PubAck] = loop.create_future()
        self._pending[token] = (future, loop.time() + self._timeout_s)
        try:
            await self._nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
        except BaseException:
            self._pending.pop(token, None)
            raise
        if self._sweep is None:
            self._sweep = loop.call_later(_SWEEP_S, self._expire)
        return future

    async def _on_ack(self, msg: Msg) -> None:
        entry = self._pending.pop(msg.subject[len(self._prefix) :], None)
        if entry is None or entry[0].done():
            return
        future = entry[0]
        if msg.headers and msg.headers.get("Status") == _NO_RESPONDERS:
            future.set_exception(nats.js.errors.NoStreamResponseError())
            return
        try:
            ack = _DECODE(msg.data)
        except msgspec.DecodeError as exc:
            future.set_exception(nats.errors.Error(f"unreadable stream ack: {exc}"))
            return
        if ack.error is not None:
            future.set_exception(_api_error(ack.error))
        else:
            future.set_result(
                js_api.PubAck(
                    stream=ack.stream, seq=ack.seq, domain=ack.domain, duplicate=ack.duplicate
                )
            )

    def _expire(self) -> None:
        self._sweep = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._pending:
            token, (future, deadline) = next(iter(self._pending.items()))
            if deadline > now:
                break
            del self._pending[token]
            if not future.done():
                future.set_exception(nats.errors.TimeoutError())
        if self._pending:
            self._sweep = loop.call_later(_SWEEP_S, self._expire)
