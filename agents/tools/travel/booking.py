"""Hold, book and pay: the side-effecting booker tools, idempotent by key.

The task id is the idempotency key (DESIGN §7: execution is at-least-once,
effects must not be). A retried `book` with the same key returns the first
booking and books nothing new; a retried `pay` for the same booking returns
the first payment. The store is consulted before and written after the
provider call, and providers are themselves called with the key, so a crash
in between still books once.
"""

import asyncio
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

from natsfleet.agents.tools.errors import (
    AmountMismatchError,
    ApprovalRequiredError,
    IdempotencyConflictError,
    InvalidQueryError,
)
from natsfleet.agents.tools.travel.fares import FareProvider, PaymentProvider
from natsfleet.agents.tools.travel.store import BookingStore
from natsfleet.agents.tools.travel.types import Booking, Hold, Offer, Passenger, Payment


def _booking_id(idempotency_key: str) -> str:
    return "bk_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]


class BookingDesk:
    """The booker's side-effecting tools over a fare provider, a payment provider and a store.

    Args:
        fares: Where offers are held and booked.
        payments: Where bookings are paid.
        store: Durable memory of bookings and payments.
        clock: Current UTC time (tests pass a fixed one).
    """

    def __init__(
        self,
        fares: FareProvider,
        payments: PaymentProvider,
        store: BookingStore,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.fares = fares
        self.payments = payments
        self.store = store
        self._clock = clock or (lambda: datetime.now(UTC))

    async def hold_offer(self, offer_id: str) -> Hold:
        """Reserve an offer at its price; raises `UnknownOfferError` for an id never issued."""
        return await self.fares.hold(offer_id)

    async def book(self, offer: Offer, passenger: Passenger, idempotency_key: str) -> Booking:
        """Book `offer` for `passenger`, once per `idempotency_key`.

        Raises:
            IdempotencyConflictError: the key already booked a different offer or passenger.
            UnknownOfferError: the provider does not know the offer.
        """
        if not idempotency_key:
            raise InvalidQueryError("book needs an idempotency key (the task id)")
        existing = await asyncio.to_thread(self.store.booking_for_key, idempotency_key)
        if existing is None:
            # Book what the provider says the offer is, not what the caller sent.
            issued = await self.fares.get_offer(offer.offer_id)
            reference = await self.fares.confirm(issued, passenger, idempotency_key)
            booking = Booking(
                booking_id=_booking_id(idempotency_key),
                idempotency_key=idempotency_key,
                reference=reference,
                offer=issued,
                passenger=passenger,
                created_at=self._clock(),
                sandbox=issued.sandbox,
            )
            existing = await asyncio.to_thread(self.store.add_booking, booking)
        if existing.offer.offer_id != offer.offer_id or existing.passenger != passenger:
            raise IdempotencyConflictError(
                idempotency_key,
                f"it booked {existing.offer.offer_id} for {existing.passenger.name}",
            )
        return existing

    async def pay(self, booking: Booking, amount_cents: int, approval_token: str | None) -> Payment:
        """Pay for `booking` once a person approved it; idempotent per booking.

        Args:
            booking: A booking returned by `book`.
            amount_cents: Must equal the booking's total: a guard against paying a stale quote.
            approval_token: Proof of the human approval (the workflow's approval id);
                recorded with the payment.

        Raises:
            ApprovalRequiredError: no approval token.
            AmountMismatchError: `amount_cents` is not the booking's total.
        """
        if not approval_token:
            raise ApprovalRequiredError(booking.booking_id)
        if amount_cents != booking.offer.total_cents:
            raise AmountMismatchError(booking.booking_id, booking.offer.total_cents, amount_cents)
        existing = await asyncio.to_thread(self.store.payment_for, booking.booking_id)
        if existing is not None:
            return existing
        key = f"{booking.idempotency_key}:pay"
        reference = await self.payments.capture(booking, amount_cents, approval_token, key)
        payment = Payment(
            payment_id=reference,
            booking_id=booking.booking_id,
            amount_cents=amount_cents,
            currency=booking.offer.currency,
            approval_token=approval_token,
            paid_at=self._clock(),
            sandbox=booking.sandbox,
        )
        return await asyncio.to_thread(self.store.add_payment, payment)
