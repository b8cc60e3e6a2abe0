"""The .ics file read back with icalendar, and a confirmation received by a local aiosmtpd."""

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from icalendar import Calendar

from natsfleet.agents.tools import MailError
from natsfleet.agents.tools.travel import (
    Booking,
    BookingDesk,
    Passenger,
    SandboxFareProvider,
    SandboxPayments,
    SmtpConfig,
    SqliteBookingStore,
    add_to_calendar,
    search_flights,
    send_confirmation,
)


async def make_booking(tmp_path: Path) -> Booking:
    offer = (await search_flights("BOS", "SFO", date(2026, 12, 3))).offers[0]
    desk = BookingDesk(
        SandboxFareProvider(), SandboxPayments(), SqliteBookingStore(tmp_path / "b.db")
    )
    return await desk.book(offer, Passenger(name="Ada", email="ada@example.com"), "task-cal")


async def test_calendar_file_has_local_times_in_each_zone(tmp_path: Path) -> None:
    booking = await make_booking(tmp_path)
    path = add_to_calendar(booking, tmp_path / "ics")
    assert path.suffix == ".ics" and path.parent == tmp_path / "ics"

    calendar = Calendar.from_ical(path.read_bytes())
    (event,) = calendar.events
    start, end = event.start, event.end
    assert isinstance(start, datetime) and isinstance(end, datetime)
    assert str(start.tzinfo) == "America/New_York"
    assert str(end.tzinfo) == "America/Los_Angeles"
    assert start == booking.offer.departs_at and end == booking.offer.arrives_at
    assert start.astimezone(UTC) == booking.offer.departs_at.astimezone(UTC)
    local_departure = booking.offer.departs_at.astimezone(ZoneInfo("America/New_York"))
    assert start.hour == local_departure.hour and start.minute == local_departure.minute
    assert {tz.tz_name for tz in calendar.timezones} == {"America/New_York", "America/Los_Angeles"}
    assert "SANDBOX" in str(event["SUMMARY"]) and booking.reference in str(event["DESCRIPTION"])
    assert add_to_calendar(booking, tmp_path / "ics") == path  # rewrite, same path


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[Envelope, EmailMessage]] = asyncio.Queue()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        await self.messages.put((envelope, parsed))
        return "250 Message accepted for delivery"


@pytest.fixture
async def smtp_server() -> AsyncIterator[tuple[int, Inbox]]:
    inbox = Inbox()
    loop = asyncio.get_running_loop()
    factory: Any = lambda: SMTP(inbox, hostname="localhost")  # noqa: E731
    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, inbox
    finally:
        server.close()
        await server.wait_closed()


async def test_confirmation_is_received_by_smtp_server(
    tmp_path: Path, smtp_server: tuple[int, Inbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, inbox = smtp_server
    monkeypatch.setenv("NATSFLEET_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("NATSFLEET_SMTP_PORT", str(port))
    monkeypatch.setenv("NATSFLEET_SMTP_FROM", "booker@natsfleet.test")
    booking = await make_booking(tmp_path)

    sent = await send_confirmation(booking, "ada@example.com")
    envelope, message = await asyncio.wait_for(inbox.messages.get(), timeout=10)

    assert envelope.mail_from == "booker@natsfleet.test"
    assert envelope.rcpt_tos == ["ada@example.com"]
    assert message["Subject"] == sent.subject
    assert message["Subject"].startswith("[SANDBOX] Booking confirmed: BOS -> SFO")
    assert booking.reference in message["Subject"]
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "Hello Ada" in text and "SANDBOX BOOKING" in text and booking.reference in text
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "text/calendar"
    calendar = Calendar.from_ical(attachment.get_content())
    assert calendar.events[0].start == booking.offer.departs_at


async def test_unreachable_smtp_server_is_a_retryable_mail_error(tmp_path: Path) -> None:
    booking = await make_booking(tmp_path)
    # Bind then close a socket: its port is free and refuses connections.
    loop = asyncio.get_running_loop()
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    config = SmtpConfig(host="127.0.0.1", port=port, timeout_s=5)
    with pytest.raises(MailError) as info:
        await send_confirmation(booking, "ada@example.com", config)
    assert info.value.retryable
