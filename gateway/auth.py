"""A gateway's door, shared by MCP and A2A: every HTTP request shows an API
key or is refused 401.

Accepted: `Authorization: Bearer <key>` or `X-API-Key: <key>`. The caller's
name (keys.py) is put in the ASGI scope, both where Starlette's auth puts a
user (`scope["user"]`, which the A2A SDK reads) and in `scope["state"]` (the
MCP handlers); the secret itself is never logged. Header values over
`MAX_CREDENTIAL_CHARS` are refused without being compared. A refusal is
logged with the peer address and why (`no key`, `an unknown key`); each
protocol shapes its 401 body (`Refusal`), the rule is this one.
"""

import logging
from collections.abc import Callable

from starlette.authentication import AuthCredentials, SimpleUser
from starlette.types import ASGIApp, Receive, Scope, Send

from natsfleet.gateway.keys import MAX_CREDENTIAL_CHARS, ApiKeys

log = logging.getLogger(__name__)

#: Where the caller's name is kept in the ASGI scope (`scope["state"]`).
CALLER_STATE_KEY = "natsfleet_caller"
#: Builds a protocol's error body (JSON) from the HTTP status and why.
Refusal = Callable[[int, str], bytes]


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
        self,
        app: ASGIApp,
        keys: ApiKeys,
        refusal: Refusal,
        open_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.keys = keys
        self.refusal = refusal
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.open_paths:
            await self.app(scope, receive, send)
            return
        presented = presented_key(scope)
        caller = self.keys.caller(presented)
        if caller is None:
            client = scope.get("client")
            why = "an unknown key" if presented else "no key"
            log.warning(
                "refused %s %s from %s: %s",
                scope.get("method", "?"),
                scope.get("path", "?"),
                client[0] if client else "?",
                why,
            )
            await send_json(send, 401, self.refusal(401, f"unauthorized: {why}"), bearer=True)
            return
        scope.setdefault("state", {})[CALLER_STATE_KEY] = caller
        scope["user"] = SimpleUser(caller)
        scope["auth"] = AuthCredentials(["authenticated"])
        await self.app(scope, receive, send)


async def send_json(send: Send, status: int, body: bytes, *, bearer: bool = False) -> None:
    """A complete JSON response (a refusal) on a raw ASGI `send`."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if bearer:
        headers.append((b"www-authenticate", b'Bearer realm="natsfleet"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
