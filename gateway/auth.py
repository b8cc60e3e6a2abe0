"""The gateway's door: every HTTP request shows an API key or is refused 401.

Accepted: `Authorization: Bearer <key>` or `X-API-Key: <key>`. The caller's
name (keys.py) is put in the ASGI scope for the handlers and the log; the
secret itself is never logged. Header values over `MAX_CREDENTIAL_CHARS` are
refused without being compared.
"""

import json
import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from natsfleet.gateway.keys import MAX_CREDENTIAL_CHARS, ApiKeys

log = logging.getLogger(__name__)

#: Where the caller's name is kept in the ASGI scope (`scope["state"]`).
CALLER_STATE_KEY = "natsfleet_caller"


def presented_key(scope: Scope) -> str:
    """The credential the request shows ("" if none or too long)."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if len(value) > MAX_CREDENTIAL_CHARS + len(b"Bearer "):
            continue
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
        elif name == b"x-api-key":
            return value.decode("latin-1").strip()
    return ""


class RequireApiKey:
    """ASGI middleware: 401 without a known key, else the caller's name in scope."""

    def __init__(
        self, app: ASGIApp, keys: ApiKeys, open_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.keys = keys
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.open_paths:
            await self.app(scope, receive, send)
            return
        caller = self.keys.caller(presented_key(scope))
        if caller is None:
            client = scope.get("client")
            log.warning(
                "refused %s %s from %s: no valid API key",
                scope.get("method", "?"),
                scope.get("path", "?"),
                client[0] if client else "?",
            )
            await _unauthorized(send)
            return
        scope.setdefault("state", {})[CALLER_STATE_KEY] = caller
        await self.app(scope, receive, send)


async def _unauthorized(send: Send) -> None:
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": -32001, "message": "unauthorized: an API key is required"},
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="natsfleet"'),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
