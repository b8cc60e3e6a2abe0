"""Typed errors of the bus."""

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
