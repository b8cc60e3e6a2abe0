"""The fast transport: the hot path beside nats-py (bus/_receive.py, bus/_wire.py).

Chosen by `transport.choose` only when every private name of nats-py it uses
exists (`FastTransport.missing()`), so a nats-py release that renames one
gives the public transport and a warning at connect, never a silent detour.
"""

from collections.abc import Coroutine
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from natsfleet.bus import _receive, _wire
from natsfleet.bus._receive import FleetNats
from natsfleet.bus.transport import DirectHandler, Transport


class FastTransport(Transport):
    """Direct subscriptions without nats-py's queue, a leaner parser, and
    publishes that skip nats-py's generic per-call work."""

    kind = "fast"
    client: FleetNats

    @staticmethod
    def new_client() -> NatsClient:
        return FleetNats()

    @staticmethod
    def missing() -> list[str]:
        """The private names this nats-py lacks (none: the fast transport works)."""
        # Asked of nats-py's own client and parser, not of FleetNats and
        # FastParser: those define some of the names themselves (overrides,
        # `_ps`), which says nothing about whether nats-py still calls them.
        probe = NatsClient()
        client_names = (*_receive.INTERNALS, *_wire.INTERNALS)
        names = [f"Client.{n}" for n in client_names if not hasattr(probe, n)]
        parser = getattr(probe, "_ps", None)
        if parser is not None:
            names += [f"Parser.{n}" for n in _receive.PARSER_INTERNALS if not hasattr(parser, n)]
        if _wire._CONNECTED is None:
            names.append("Client.CONNECTED")
        return names

    # Plain functions handing back the coroutine: no extra frame per message.
    def publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None, reply: str = ""
    ) -> Coroutine[Any, Any, None]:
        if headers:
            return _wire.publish(self.client, subject, payload, headers, reply)
        return _wire.publish_plain(self.client, subject, payload, reply)

    async def subscribe(
        self, subject: str, handler: DirectHandler, queue: str = ""
    ) -> NatsSubscription:
        return await self.client.subscribe_direct(subject, handler, queue)

    def ack(self, msg: Msg) -> Coroutine[Any, Any, None]:
        # What `Msg.ack` sends, on the hot path's publish: one per Submit and
        # per RESULTS message.
        return _wire.publish_plain(self.client, msg.reply, b"")
