"""API keys every gateway accepts (MCP and A2A alike), each naming its caller
and, optionally, the tenant the caller's tasks are for.

One rule set for both gateways (docs/interop.md, "API keys"):

- Keys come from a file (`--keys-file`: one entry a line, `#` comments) when
  one is given, else from `NATSFLEET_GATEWAY_KEYS` (entries separated by
  commas). Never both: the file, when named, is the whole truth.
- An entry is `NAME=SECRET` or `NAME:TENANT=SECRET`. NAME is the caller:
  `[A-Za-z0-9_-]{1,64}`, it appears in logs and in idempotency keys. TENANT
  is a fleet id (`Submit.tenant`, docs/llm.md): every task the caller starts
  is for it, and the caller sees no task of another tenant. Without one the
  caller's tasks carry no tenant.
- SECRET is 16 to 256 printable ASCII characters without spaces or commas.
  A name or a secret given twice is refused (two names for one secret would
  make the caller ambiguous).
- A gateway refuses to start without at least one key: it never serves the
  fleet unauthenticated.
"""

import hmac
import re
from pathlib import Path

from natsfleet.gateway.errors import GatewayError
from natsfleet.protocols import InvalidValue, check_id

#: Where keys are read from when no keys file is given.
KEYS_ENV = "NATSFLEET_GATEWAY_KEYS"
#: A caller name: it appears in logs and in idempotency keys (no dots: a key
#: name may end up as a subject token).
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: Secrets are opaque, printable, without spaces or commas; long enough not to guess.
_SECRET = re.compile(r"^[\x21-\x2b\x2d-\x7e]{16,256}$")
#: The longest credential header value read (anything longer is refused unread).
MAX_CREDENTIAL_CHARS = 300


class ApiKeys:
    """Secret -> caller name (compared in constant time), caller -> tenant."""

    def __init__(self, keys: dict[str, str], tenants: dict[str, str] | None = None) -> None:
        """`keys`: caller name -> secret; `tenants`: caller name -> tenant id."""
        if not keys:
            raise GatewayError(f"no API key configured ({KEYS_ENV} or --keys-file)")
        seen: dict[str, str] = {}
        for name, secret in keys.items():
            if not _NAME.match(name):
                raise GatewayError(f"API key name {name[:64]!r} is not [A-Za-z0-9_-]{{1,64}}")
            if not _SECRET.match(secret):
                raise GatewayError(
                    f"API key {name!r}: a secret is 16 to 256 printable characters, "
                    "no spaces or commas"
                )
            if secret in seen:
                raise GatewayError(f"API keys {seen[secret]!r} and {name!r} have the same secret")
            seen[secret] = name
        self.tenants: dict[str, str] = dict(tenants or {})
        for name, tenant in self.tenants.items():
            if name not in keys:
                raise GatewayError(f"tenant {tenant!r} given for {name!r}, which is no key")
            try:
                check_id(tenant, f"tenant of API key {name!r}")
            except InvalidValue as exc:
                raise GatewayError(str(exc)) from None
        self._keys = tuple((secret.encode(), name) for name, secret in keys.items())

    def __len__(self) -> int:
        return len(self._keys)

    @classmethod
    def parse(cls, text: str, source: str) -> "ApiKeys":
        """`NAME[:TENANT]=SECRET` entries separated by commas or lines; `#` starts a comment."""
        keys: dict[str, str] = {}
        tenants: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), 1):
            for entry in line.split("#", 1)[0].split(","):
                entry = entry.strip()
                if not entry:
                    continue
                who, sep, secret = entry.partition("=")
                if not sep:
                    raise GatewayError(
                        f"{source}, line {number}: an entry is name=secret or name:tenant=secret"
                    )
                name, has_tenant, tenant = (part.strip() for part in who.partition(":"))
                if name in keys:
                    raise GatewayError(f"{source}: key name {name!r} given twice")
                keys[name] = secret.strip()
                if has_tenant:
                    tenants[name] = tenant
        return cls(keys, tenants)

    @classmethod
    def load(cls, env_value: str | None, path: Path | None) -> "ApiKeys":
        """Keys from a file (when given) else from the environment variable's value."""
        if path is not None:
            try:
                text = path.read_text()
            except OSError as exc:
                raise GatewayError(f"cannot read keys file {path}: {exc.strerror}") from None
            return cls.parse(text, str(path))
        return cls.parse(env_value or "", KEYS_ENV)

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

    def tenant_of(self, caller: str) -> str | None:
        """The tenant a caller's tasks are for (None: no tenant)."""
        return self.tenants.get(caller)
