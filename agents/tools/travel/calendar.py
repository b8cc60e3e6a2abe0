"""`add_to_calendar`: a booking as an iCalendar (.ics) file.

Start and end are written in the departure and arrival airports' own zones
(with their VTIMEZONE definitions), so a calendar shows local times at each
end whatever zone its user is in.
"""

from datetime import UTC, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from natsfleet.agents.tools.travel.types import Booking, format_money

PRODID = "-//natsfleet//booker//EN"


def booking_summary(booking: Booking) -> str:
    """The event title: `Flight SBX123 BOS -> SFO`, with the sandbox label when it applies."""
    offer = booking.offer
    label = "[SANDBOX] " if booking.sandbox else ""
    return f"{label}Flight {offer.flight_number} {offer.origin.iata} -> {offer.destination.iata}"


def booking_description(booking: Booking) -> str:
    """A few lines with the reference, route, times and price."""
    offer = booking.offer
    lines = [
        offer.summary(),
        f"Booking reference: {booking.reference} (booking {booking.booking_id})",
        f"Passenger: {booking.passenger.name}",
        f"From: {offer.origin.name}, {offer.origin.city}",
        f"To: {offer.destination.name}, {offer.destination.city}",
        f"Total: {format_money(offer.total_cents, offer.currency)}",
    ]
    if booking.sandbox:
        lines.insert(0, "SANDBOX BOOKING - this is not a real flight and no ticket was issued.")
    return "\n".join(lines)


def calendar_bytes(booking: Booking) -> bytes:
    """The .ics content for `booking` (one VEVENT plus the VTIMEZONEs it uses)."""
    from icalendar import Calendar, Event  # ~60 ms: only when a calendar is written

    offer = booking.offer
    event = Event.new(
        uid=f"{booking.booking_id}@natsfleet",
        stamp=booking.created_at.astimezone(UTC),
        start=offer.departs_at.astimezone(ZoneInfo(offer.origin.tz)),
        end=offer.arrives_at.astimezone(ZoneInfo(offer.destination.tz)),
        summary=booking_summary(booking),
        description=booking_description(booking),
        location=f"{offer.origin.name} ({offer.origin.iata})",
    )
    calendar = Calendar.new(
        prodid=PRODID, uid=f"{booking.booking_id}-calendar@natsfleet", subcomponents=[event]
    )
    # Zone rules for the trip's year only; the default span (1970-2038) is ~10 KiB per zone.
    calendar.add_missing_timezones(
        first_date=offer.departs_at.date() - timedelta(days=366),
        last_date=offer.arrives_at.date() + timedelta(days=366),
    )
    content: bytes = calendar.to_ical()
    return content


def add_to_calendar(booking: Booking, directory: str | Path) -> Path:
    """Write `<directory>/<booking id>.ics` and return its path (rewritten if it exists)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{booking.booking_id}.ics"
    staging = path.with_suffix(".ics.tmp")
    staging.write_bytes(calendar_bytes(booking))
    staging.replace(path)  # a reader never sees half a file
    return path
