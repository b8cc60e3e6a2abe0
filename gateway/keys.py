"""API keys a gateway accepts, each with the caller name it is logged under.

Keys come from `NATSFLEET_GATEWAY_KEYS` (`name=secret,name2=secret2`) or a
file with one `name=secret` per line (`#` comments). A gateway refuses to
start without at least one key: it never serves the fleet unauthenticated.
"""

import hmac
import re
from pathlib import Path

from natsfleet.gateway.errors import GatewayError

#: A caller name: it appears in logs and in idempotency keys.
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: Secrets are opaque, printable, without spaces or commas; long enough not to guess.
_SECRET = re.compile(r"^[\x21-\x2b\x2d-\x7e]{16,256}$")
#: The longest credential header value read (anything longer is refused unread).
MAX_CREDENTIAL_CHARS = 300


class ApiKeys:
    """Secret -> caller name, compared in constant time."""

    def __init__(self, keys: dict[str, str]) -> None:
        if not keys:
            raise GatewayError("no API key configured (NATSFLEET_GATEWAY_KEYS or --keys-file)")
        for name, secret in keys.items():
            if not _NAME.match(name):
                raise GatewayError(f"API key name {name[:64]!r} is not [A-Za-z0-9_.-]{{1,64}}")
            if not _SECRET.match(secret):
                raise GatewayError(
                    f"API key {name!r}: a secret is 16 to 256 printable characters, "
                    "no spaces or commas"
                )
        self._keys = tuple((secret.encode(), name) for name, secret in keys.items())

    @classmethod
    def parse(cls, text: str, source: str) -> "ApiKeys":
        """`name=secret` entries separated by commas or lines; `#` starts a comment."""
        keys: dict[str, str] = {}
        for line in text.splitlines():
            for entry in line.split("#", 1)[0].split(","):
                entry = entry.strip()
                if not entry:
                    continue
                name, sep, secret = entry.partition("=")
                if not sep:
                    raise GatewayError(f"{source}: an entry is name=secret")
                if name.strip() in keys:
                    raise GatewayError(f"{source}: key name {name.strip()!r} given twice")
                keys[name.strip()] = secret.strip()
        return cls(keys)

    @classmethod
    def load(cls, env_value: str | None, path: Path | None) -> "ApiKeys":
        """Keys from a file (when given) else from the environment variable's value."""
        if path is not None:
            try:
                text = path.read_text()
            except OSError as exc:
                raise GatewayError(f"cannot read keys file {path}: {exc.strerror}") from None
            return cls.parse(text, str(path))
        return cls.parse(env_value or "", "NATSFLEET_GATEWAY_KEYS")

    def caller(self, presented: str) -> str | None:
        """The caller name of a presented secret, None if it is no key of ours.

        Every key is compared (constant time each), so the time taken does not
        tell which key, or how much of one, matched.
        """
        if not presented or len(presented) > MAX_CREDENTIAL_CHARS:
            return None
        given = presented.encode(errors="replace")
        found = None
        for secret, name in self._keys:
            if hmac.compare_digest(secret, given):
                found = name
        return found
