"""API keys for a gateway: every request but the Agent Card needs one.

A key comes as `Authorization: Bearer <key>` or `X-API-Key: <key>`. Keys are
named (`name=secret`), the name is the caller: it is logged with every call
and scopes the caller's tasks (gateway/a2a/store.py). A request without a key,
or with an unknown one, is answered 401 and logged with where it came from.
"""

import hmac
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from starlette.authentication import AuthCredentials, SimpleUser
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

KEYS_ENV = "NATSFLEET_GATEWAY_KEYS"
#: Shortest secret accepted: a guessable key is no key.
SECRET_MIN_CHARS = 16
_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


class BadKeys(ValueError):
    """The configured keys are unusable (the gateway refuses to start)."""


def parse_keys(entries: Iterable[str]) -> dict[str, str]:
    """`name=secret` entries (blank ones and `#` comments skipped) as {secret: name}."""
    keys: dict[str, str] = {}
    for number, raw in enumerate(entries, 1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        name, sep, secret = entry.partition("=")
        if not sep or not _NAME.match(name.strip()):
            raise BadKeys(f"key {number}: expected NAME=SECRET with NAME of [A-Za-z0-9_-]")
        secret = secret.strip()
        if len(secret) < SECRET_MIN_CHARS or not secret.isprintable() or " " in secret:
            raise BadKeys(
                f"key {number} ({name.strip()}): the secret needs {SECRET_MIN_CHARS}+ "
                "printable characters without spaces"
            )
        keys[secret] = name.strip()
    return keys


def load_keys(path: Path | None) -> dict[str, str]:
    """Keys from `path` (one `name=secret` a line) and from `$NATSFLEET_GATEWAY_KEYS`
    (comma-separated); at least one is required."""
    entries = os.environ.get(KEYS_ENV, "").split(",")
    if path is not None:
        entries += path.read_text().splitlines()
    keys = parse_keys(entries)
    if not keys:
        raise BadKeys(f"no API key: give --keys-file or ${KEYS_ENV} (name=secret,...)")
    return keys


def _presented(headers: Mapping[bytes, bytes]) -> str | None:
    value = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, token = value.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return key or None


class KeyAuth:
    """ASGI middleware: refuse without a known key, name the caller otherwise."""

    def __init__(self, app: ASGIApp, keys: Mapping[str, str], open_paths: Iterable[str]) -> None:
        self.app = app
        self.keys = dict(keys)
        self.open_paths = frozenset(open_paths)

    def caller(self, presented: str) -> str | None:
        found = None
        for secret, name in self.keys.items():  # every key compared: no timing hint
            if hmac.compare_digest(secret.encode(), presented.encode()):
                found = name
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        presented = _presented(dict(scope.get("headers") or []))
        name = self.caller(presented) if presented else None
        if name is None:
            peer = scope.get("client") or ("?", 0)
            why = "an unknown key" if presented else "no key"
            log.warning("refused %s %s from %s: %s", scope["method"], scope["path"], peer[0], why)
            await _refuse(send, why)
            return
        scope["user"] = SimpleUser(name)
        scope["auth"] = AuthCredentials(["authenticated"])
        await self.app(scope, receive, send)


async def _refuse(send: Send, why: str) -> None:
    body = json.dumps({"error": f"unauthorized: {why}"}).encode()
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
