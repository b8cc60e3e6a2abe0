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
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            why = f"request body too large (at most {self.max_bytes} bytes)"
            await send_json(send, 413, self.refusal(413, why))
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # the app's exception handler answers 413
                raise HTTPException(413)
            return message

        await self.app(scope, counted, send)
