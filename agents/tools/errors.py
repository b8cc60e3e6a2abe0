"""Typed errors of the agents' domain tools.

Every tool error derives from `ToolError`, itself a `NatsFleetError`, so an
agent can turn any of them into a wire `Failure` with `error_type`, `detail`
and `retryable` without knowing the tool. The message is built here, once.
"""

from collections.abc import Sequence

from natsfleet.protocols.errors import NatsFleetError


class ToolError(NatsFleetError):
    """Root of the errors raised by `natsfleet.agents.tools`."""

    retryable = False


class NotConfiguredError(ToolError):
    """A provider needs settings (endpoint, key, host) that are not set."""

    def __init__(self, provider: str, missing: Sequence[str]) -> None:
        self.provider = provider
        self.missing = tuple(missing)
        super().__init__(f"{provider} is not configured: set {', '.join(self.missing)}")


class CorpusError(ToolError):
    """The local research corpus cannot be read or holds no documents."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"corpus {path}: {detail}")


class ProviderError(ToolError):
    """An external provider (search, fares, mail) failed; usually worth retrying."""

    def __init__(self, provider: str, detail: str, *, retryable: bool = True) -> None:
        self.provider = provider
        self.detail = detail
        self.retryable = retryable
        super().__init__(f"{provider}: {detail}")


class UnknownAirportError(ToolError):
    """No airport matches an IATA code or a city name."""

    def __init__(self, query: str) -> None:
        self.query = query
        super().__init__(f"no airport matches {query!r}")


class InvalidQueryError(ToolError):
    """A tool input is well-formed but not meaningful (same origin and destination, ...)."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class UnknownOfferError(ToolError):
    """An offer id is not one the provider issued, or it no longer exists."""

    def __init__(self, offer_id: str) -> None:
        self.offer_id = offer_id
        super().__init__(f"unknown offer {offer_id!r}")


class ApprovalRequiredError(ToolError):
    """A payment was attempted without a human approval token."""

    def __init__(self, booking_id: str) -> None:
        self.booking_id = booking_id
        super().__init__(f"payment for booking {booking_id} needs an approval token")


class AmountMismatchError(ToolError):
    """The amount to pay differs from the booking's total."""

    def __init__(self, booking_id: str, expected_cents: int, got_cents: int) -> None:
        self.booking_id = booking_id
        self.expected_cents = expected_cents
        self.got_cents = got_cents
        super().__init__(
            f"booking {booking_id} costs {expected_cents} cents, asked to pay {got_cents}"
        )


class IdempotencyConflictError(ToolError):
    """An idempotency key was reused for a different request."""

    def __init__(self, key: str, detail: str) -> None:
        self.key = key
        self.detail = detail
        super().__init__(f"idempotency key {key!r} already used: {detail}")


class TripRequestError(ToolError):
    """A travel request could not be parsed into a complete `TripRequest`.

    `missing` names the fields that were not found (`origin`, `destination`,
    `date`); `unresolved` maps a field to the text that named no airport.
    """

    def __init__(self, missing: Sequence[str], unresolved: dict[str, str] | None = None) -> None:
        self.missing = tuple(missing)
        self.unresolved = dict(unresolved or {})
        parts = []
        if self.missing:
            parts.append(f"missing {', '.join(self.missing)}")
        parts.extend(
            f"{field} {text!r} is not a known airport or city"
            for field, text in self.unresolved.items()
        )
        super().__init__("cannot understand the trip request: " + "; ".join(parts))


class MailError(ToolError):
    """The SMTP server refused or could not be reached."""

    def __init__(self, host: str, port: int, detail: str, *, retryable: bool = True) -> None:
        self.host = host
        self.port = port
        self.detail = detail
        self.retryable = retryable
        super().__init__(f"smtp {host}:{port}: {detail}")
