"""`send_confirmation`: the booking by email over real SMTP, with the .ics attached.

Settings come from the environment (`NATSFLEET_SMTP_*`) unless given; the
password is read from the environment only and never logged. The stdlib
client runs in a worker thread so the agent's event loop keeps heartbeating.
"""

import asyncio
import email.policy
import logging
import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import msgspec

from natsfleet.agents.tools.errors import InvalidQueryError, MailError
from natsfleet.agents.tools.travel.calendar import booking_description, calendar_bytes
from natsfleet.agents.tools.travel.types import Booking

log = logging.getLogger(__name__)
# CPython folds some headers of 70-80 characters before their first word, which
# readers then show with a leading space; RFC 5322 allows lines up to 998.
_POLICY = email.policy.SMTP.clone(max_line_length=200)


class SmtpConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Where confirmations are sent from. `password` stays out of reprs and logs."""

    host: str = "localhost"
    port: int = 25
    sender: str = "natsfleet booker <booker@localhost>"
    username: str = ""
    password: str = ""
    starttls: bool = False
    timeout_s: float = 10.0

    def __repr__(self) -> str:
        return f"SmtpConfig(host={self.host!r}, port={self.port}, sender={self.sender!r})"

    @classmethod
    def from_env(cls) -> "SmtpConfig":
        """`NATSFLEET_SMTP_HOST`, `_PORT`, `_FROM`, `_USER`, `_PASSWORD`, `_STARTTLS` (1/0)."""
        env = os.environ
        default = cls()
        return cls(
            host=env.get("NATSFLEET_SMTP_HOST", default.host),
            port=int(env.get("NATSFLEET_SMTP_PORT", default.port)),
            sender=env.get("NATSFLEET_SMTP_FROM", default.sender),
            username=env.get("NATSFLEET_SMTP_USER", ""),
            password=env.get("NATSFLEET_SMTP_PASSWORD", ""),
            starttls=env.get("NATSFLEET_SMTP_STARTTLS", "0").lower() in {"1", "true", "yes"},
        )


class Confirmation(msgspec.Struct, frozen=True, kw_only=True):
    """What was sent: enough to find the mail in the server's log."""

    message_id: str
    to: str
    subject: str


def confirmation_subject(booking: Booking) -> str:
    """`Booking confirmed: BOS -> SFO on Thu 03 Dec 2026 (ref SBQ56H2E)`, sandbox-labelled."""
    offer = booking.offer
    label = "[SANDBOX] " if booking.sandbox else ""
    return (
        f"{label}Booking confirmed: {offer.origin.iata} -> {offer.destination.iata} "
        f"on {offer.departs_at:%a %d %b %Y} (ref {booking.reference})"
    )


def build_message(booking: Booking, to: str, sender: str) -> EmailMessage:
    """The confirmation email: a plain-text body and the booking's .ics attached."""
    message = EmailMessage(policy=_POLICY)
    message["Subject"] = confirmation_subject(booking)
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(idstring=booking.booking_id, domain="natsfleet")
    message.set_content(
        f"Hello {booking.passenger.name},\n\n{booking_description(booking)}\n\n"
        "The attached calendar file adds the flight to your calendar.\n"
    )
    message.add_attachment(
        calendar_bytes(booking),
        maintype="text",
        subtype="calendar",
        filename=f"{booking.booking_id}.ics",
    )
    return message


def _send(config: SmtpConfig, message: EmailMessage) -> None:
    with smtplib.SMTP(config.host, config.port, timeout=config.timeout_s) as client:
        if config.starttls:
            client.starttls(context=ssl.create_default_context())
        if config.username:
            client.login(config.username, config.password)
        client.send_message(message)


async def send_confirmation(
    booking: Booking, to: str, config: SmtpConfig | None = None
) -> Confirmation:
    """Email the booking confirmation to `to`.

    Raises:
        InvalidQueryError: `to` is not an email address.
        MailError: the server refused (not retryable for refused recipients) or was unreachable.
    """
    if "@" not in to or any(c in to for c in "\r\n"):
        raise InvalidQueryError(f"not an email address: {to!r}")
    config = config or SmtpConfig.from_env()
    message = build_message(booking, to, config.sender)
    try:
        await asyncio.to_thread(_send, config, message)
    except smtplib.SMTPRecipientsRefused as exc:
        raise MailError(
            config.host, config.port, f"recipient refused: {to}", retryable=False
        ) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise MailError(config.host, config.port, f"{type(exc).__name__}: {exc}") from exc
    log.info(
        "confirmation sent", extra={"booking_id": booking.booking_id, "smtp_host": config.host}
    )
    return Confirmation(
        message_id=str(message["Message-ID"]), to=to, subject=str(message["Subject"])
    )
