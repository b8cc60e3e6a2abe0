"""The request body limit both gateways apply (MCP and A2A): a body over
`max_bytes` is refused 413 before it is held in memory, whether its
Content-Length says so or its chunks do. Each protocol shapes the body
(`auth.Refusal`); the rule is this one.
"""

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from natsfleet.gateway.auth import Refusal, send_json


class BodyLimit:
    """ASGI middleware: 413 for a body over `max_bytes` (module doc)."""

    def __init__(self, app: ASGIApp, max_bytes: int, refusal: Refusal) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        why = f"request body too large (at most {self.max_bytes} bytes)"
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await send_json(send, 413, self.refusal(413, why))
            return
        seen = 0
        exceeded = False
        started = False

        async def counted() -> Message:
            nonlocal seen, exceeded
            if exceeded:  # the app reads on after the overflow: nothing more comes
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                exceeded = True
                raise HTTPException(413)
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            # Whatever the app answers to the overflow (a plain-text 413, a
            # JSON-RPC error with 200) is dropped: the protocol's refusal goes out.
            if exceeded and not started:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not exceeded or started:
                raise
            # The overflow escaped the app: answered below like any other.
        if exceeded and not started:
            await send_json(send, 413, self.refusal(413, why))
