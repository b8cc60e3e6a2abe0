"""Connection settings for the bus, from code or from the environment."""

import os
from typing import Any

import msgspec

from natsfleet.protocols import DEFAULT_PREFIX, Subjects

DEFAULT_URL = "nats://127.0.0.1:4222"


class BusConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How to reach NATS and which fleet (subject prefix) to join.

    Secrets (password, token, NKey seed, credentials) are only ever read from
    here, which is filled from the environment or files, never from messages.
    """

    url: str = DEFAULT_URL  # several servers: comma-separated
    prefix: str = DEFAULT_PREFIX
    name: str = "natsfleet"
    user: str | None = None
    password: str | None = None
    token: str | None = None
    nkey_seed_file: str | None = None
    creds_file: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_hostname: str | None = None
    connect_timeout_s: float = 2.0
    # nats-py retries each server, waiting this long between tries.
    reconnect_wait_s: float = 0.25
    # Tries per server before nats-py gives up (-1: forever). Giving up closes
    # the connection for good: a long-running process then exits (code 6) for
    # its process manager to restart it; at start it exits with code 5.
    max_reconnect_attempts: int = -1
    request_timeout_s: float = 5.0
    js_timeout_s: float = 5.0
    drain_timeout_s: float = 10.0
    # Largest payload a subscriber accepts, blobs included.
    max_message_bytes: int = 64 * 1024 * 1024
    # Per-subscription buffers; a subscriber over them is a slow consumer.
    pending_msgs_limit: int = 65_536
    pending_bytes_limit: int = 64 * 1024 * 1024
    # Which implementation of the transport seam (bus/transport.py): auto, fast, public.
    transport: str = "auto"

    @property
    def servers(self) -> list[str]:
        return [part.strip() for part in self.url.split(",") if part.strip()]

    def __repr__(self) -> str:
        # Never print secrets, even in a debugger or a log line.
        shown = {
            f: ("***" if f in _SECRET_FIELDS and getattr(self, f) else getattr(self, f))
            for f in self.__struct_fields__
        }
        return f"BusConfig({shown})"

    __str__ = __repr__

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> "BusConfig":
        """Settings from `NATS_URL`, `NATS_USER`, `NATS_PASSWORD`, `NATS_TOKEN`,
        `NATS_NKEY_SEED_FILE`, `NATS_CREDS`, `NATS_TLS_CA`, `NATS_TLS_CERT`,
        `NATS_TLS_KEY`, `NATS_MAX_RECONNECT_ATTEMPTS`, `NATSFLEET_PREFIX`,
        `NATSFLEET_TRANSPORT`; keyword overrides win when not None. A malformed
        number, subject prefix or transport raises ValueError."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for env_name, field in _ENV_FIELDS.items():
            if source.get(env_name):
                values[field] = source[env_name]
        attempts = source.get(_ATTEMPTS_ENV)
        if attempts:
            try:
                values["max_reconnect_attempts"] = int(attempts)
            except ValueError:
                raise ValueError(
                    f"{_ATTEMPTS_ENV} must be a whole number (-1: forever), not {attempts!r}"
                ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        config = cls(**values)
        Subjects(config.prefix)  # a prefix no subject can carry: ValueError here, not at connect
        if config.transport not in _TRANSPORTS:
            choices = ", ".join(_TRANSPORTS)
            raise ValueError(
                f"NATSFLEET_TRANSPORT must be one of {choices}, not {config.transport!r}"
            )
        return config


_ATTEMPTS_ENV = "NATS_MAX_RECONNECT_ATTEMPTS"

_SECRET_FIELDS = frozenset({"password", "token"})

_ENV_FIELDS = {
    "NATS_URL": "url",
    "NATS_USER": "user",
    "NATS_PASSWORD": "password",
    "NATS_TOKEN": "token",
    "NATS_NKEY_SEED_FILE": "nkey_seed_file",
    "NATS_CREDS": "creds_file",
    "NATS_TLS_CA": "tls_ca_file",
    "NATS_TLS_CERT": "tls_cert_file",
    "NATS_TLS_KEY": "tls_key_file",
    "NATSFLEET_PREFIX": "prefix",
    "NATSFLEET_TRANSPORT": "transport",
}
# bus/transport.py's CHOICES (not imported: the transport imports nats-py's client).
_TRANSPORTS = ("auto", "fast", "public")
