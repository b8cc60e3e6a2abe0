"""Where bookings and payments are remembered, so idempotency survives restarts.

`SqliteBookingStore` keeps one small sqlite file. Inserts are "first writer
wins" (`INSERT OR IGNORE` on the idempotency key, then read back), which is
atomic across threads and processes sharing the file.
"""

import sqlite3
from pathlib import Path
from typing import Protocol

import msgspec

from natsfleet.agents.tools.travel.types import Booking, Payment

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bookings (
    idempotency_key TEXT PRIMARY KEY,
    booking_id TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS payments (
    booking_id TEXT PRIMARY KEY,
    body BLOB NOT NULL
);
"""
_BOOKING = msgspec.json.Decoder(Booking)
_PAYMENT = msgspec.json.Decoder(Payment)


class BookingStore(Protocol):
    """Durable record of bookings (by idempotency key) and payments (by booking id)."""

    def booking_for_key(self, idempotency_key: str) -> Booking | None:
        """The booking made with this key, if any."""
        ...

    def add_booking(self, booking: Booking) -> Booking:
        """Store `booking` unless its key is taken; returns the stored one (first wins)."""
        ...

    def payment_for(self, booking_id: str) -> Payment | None:
        """The payment of this booking, if any."""
        ...

    def add_payment(self, payment: Payment) -> Payment:
        """Store `payment` unless the booking is paid; returns the stored one (first wins)."""
        ...


class SqliteBookingStore:
    """`BookingStore` in one sqlite file (created with its folder on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        # One short connection per call: safe from any thread, and the file
        # lock orders writers from several booker processes.
        return sqlite3.connect(self.path, timeout=10.0, isolation_level=None)

    def _one(self, sql: str, arg: str) -> bytes | None:
        db = self._connect()
        try:
            row = db.execute(sql, (arg,)).fetchone()
        finally:
            db.close()
        return None if row is None else bytes(row[0])

    def booking_for_key(self, idempotency_key: str) -> Booking | None:
        body = self._one("SELECT body FROM bookings WHERE idempotency_key = ?", idempotency_key)
        return None if body is None else _BOOKING.decode(body)

    def add_booking(self, booking: Booking) -> Booking:
        db = self._connect()
        try:
            db.execute(
                "INSERT OR IGNORE INTO bookings (idempotency_key, booking_id, body)"
                " VALUES (?, ?, ?)",
                (booking.idempotency_key, booking.booking_id, msgspec.json.encode(booking)),
            )
        finally:
            db.close()
        stored = self.booking_for_key(booking.idempotency_key)
        assert stored is not None  # inserted above, never deleted
        return stored

    def payment_for(self, booking_id: str) -> Payment | None:
        body = self._one("SELECT body FROM payments WHERE booking_id = ?", booking_id)
        return None if body is None else _PAYMENT.decode(body)

    def add_payment(self, payment: Payment) -> Payment:
        db = self._connect()
        try:
            db.execute(
                "INSERT OR IGNORE INTO payments (booking_id, body) VALUES (?, ?)",
                (payment.booking_id, msgspec.json.encode(payment)),
            )
        finally:
            db.close()
        stored = self.payment_for(payment.booking_id)
        assert stored is not None
        return stored
