"""Typed errors of the bus."""

import socket
from typing import ClassVar

from natsfleet.protocols import NatsFleetError


def describe(exc: BaseException) -> str:
    """`Type: message` for a log line (just `Type` when the message is empty)."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class BusError(NatsFleetError):
    """A bus operation failed."""

    def __init__(self, detail: str, *, retryable: bool = True) -> None:
        self.detail = detail
        self.retryable = retryable
        super().__init__(detail)


class NotConnected(BusError):
    def __init__(self) -> None:
        super().__init__("bus is not connected; call connect() first", retryable=False)


class RequestTimeout(BusError):
    def __init__(self, subject: str, timeout_s: float) -> None:
        self.subject = subject
        self.timeout_s = timeout_s
        super().__init__(f"no reply on {subject} within {timeout_s} s")


class NoResponders(BusError):
    def __init__(self, subject: str) -> None:
        self.subject = subject
        super().__init__(f"no subscriber for {subject}")


class Unreachable(BusError):
    """NATS could not be reached: within the time a client verb allows, or at all
    when nats-py gave up (`BusConfig.max_reconnect_attempts`).

    `exit_code` is what a natsfleet process exits with for it (docs/operations.md).
    """

    exit_code: ClassVar[int] = 5

    def __init__(self, url: str, reason: str, within_s: float | None = None) -> None:
        self.url = url
        self.reason = reason
        self.within_s = within_s
        within = f" within {within_s:g} s" if within_s is not None else ""
        super().__init__(f"cannot reach NATS at {url}{within} ({reason})")


class BadNatsConfig(BusError):
    """The connection settings themselves are wrong (a malformed URL): no retry helps."""

    exit_code: ClassVar[int] = 2

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"cannot connect to NATS at {url!r}: {reason}", retryable=False)


class ConnectionLost(BusError):
    """The NATS connection was closed for good after it was made: nats-py gave up
    reconnecting, or the server closed it with a fatal error. Nothing on this
    Bus works any more; a long-running process exits with `exit_code` so its
    process manager restarts it (docs/operations.md).
    """

    exit_code: ClassVar[int] = 6

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"NATS connection closed for good: {reason}", retryable=False)


def display_url(url: str) -> str:
    """The server URL(s) without user, password or token, for messages and logs."""
    shown = []
    for part in url.split(","):
        scheme, sep, rest = part.strip().partition("://")
        if not sep:  # no scheme: `host:port` or `user:pass@host:port`
            scheme, rest = "", scheme
        shown.append(f"{scheme}{sep}{rest.rpartition('@')[2]}")
    return ",".join(shown)


def connect_reason(exc: BaseException) -> str:
    """Why one connection attempt failed, in a few words a user can act on."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"unknown host: {exc.strerror or exc}"
    if isinstance(exc, TimeoutError):
        return "no answer"
    return describe(exc)
