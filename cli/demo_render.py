"""How the demo prints: sections, the article with its sources, ledgers, the itinerary."""

from collections.abc import Sequence
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table

from natsfleet.agents.tools.travel import format_money
from natsfleet.cli.demo_steps import ContentOutcome, LedgerRow, TravelOutcome
from natsfleet.protocols import Usage


def section(console: Console, title: str) -> None:
    console.print()
    console.rule(f"[bold]{title}")


def step_line(console: Console, step: str, agent: str, usage: Usage) -> None:
    cost = f"{usage.calls} LLM call(s), ${usage.cost_usd:.4f}" if usage.calls else "no LLM call"
    console.print(f"  [green]done[/]  {step:<18} by {agent:<14} {cost}")


def ledger_table(rows: Sequence[LedgerRow]) -> Table:
    table = Table("step", "agent instance", "calls", "tokens in/out", "cost (USD)")
    total = Usage()
    for row in rows:
        u = row.usage
        total = total + u
        table.add_row(
            row.step, row.agent, str(u.calls), f"{u.input_tokens}/{u.output_tokens}",
            f"{u.cost_usd:.4f}",
        )  # fmt: skip
    table.add_row(
        "[bold]total", "", str(total.calls), f"{total.input_tokens}/{total.output_tokens}",
        f"[bold]{total.cost_usd:.4f}",
    )  # fmt: skip
    return table


def show_content(console: Console, outcome: ContentOutcome) -> None:
    draft, verdict = outcome.draft, outcome.verdict
    state = "approved" if verdict.approved else "NOT approved (out of rounds)"
    console.print(
        f"\nEditor's verdict: [bold]{state}[/] after {outcome.rounds} round(s); "
        f"{draft.words} words; written by {draft.model}."
    )
    for note in verdict.notes:
        console.print(f"  - {note}")
    console.print(Panel(Markdown(draft.text), title="The article", expand=False, width=100))
    console.print("[bold]Sources[/]")
    for source in draft.sources:
        console.print(f"  [{source.n}] {source.title} (examples/corpus/{source.location})")
    console.print("\n[bold]Cost ledger[/]")
    console.print(ledger_table(outcome.ledger))


def show_travel(console: Console, outcome: TravelOutcome) -> None:
    trip, booking, offer = outcome.trip, outcome.booking, outcome.booking.offer
    console.print(
        f"\nRequest understood by {trip.parsed_by}: {trip.trip.origin.label} -> "
        f"{trip.trip.destination.label} on {trip.query.date:%A %d %B %Y}, "
        f"{trip.query.passengers} passenger(s)."
    )
    console.print(outcome.search.text())
    console.print(f"\nHeld and booked the cheapest: {offer.summary()}")
    console.print(f"Approval before payment: given by {outcome.approved_by}.")
    itinerary = Table(show_header=False, box=None)
    itinerary.add_column(no_wrap=True)
    itinerary.add_column(overflow="fold")
    itinerary.add_row("passenger", f"{booking.passenger.name} <{booking.passenger.email}>")
    itinerary.add_row("flight", f"{offer.carrier} {offer.flight_number}")
    departs = offer.departs_at.astimezone(ZoneInfo(offer.origin.tz))
    arrives = offer.arrives_at.astimezone(ZoneInfo(offer.destination.tz))
    itinerary.add_row("departs", f"{departs:%a %d %b %Y %H:%M %Z}  {offer.origin.name}")
    itinerary.add_row("arrives", f"{arrives:%a %d %b %Y %H:%M %Z}  {offer.destination.name}")
    itinerary.add_row("booking", f"{booking.reference} ({booking.booking_id})")
    paid = format_money(outcome.payment.amount_cents, outcome.payment.currency)
    itinerary.add_row("paid", f"{paid}, payment {outcome.payment.payment_id}")
    label = "SANDBOX - no real flight was booked and no money moved" if booking.sandbox else ""
    console.print(Panel(itinerary, title=f"Itinerary {label}".strip(), expand=False))
    console.print(f"Calendar file (.ics): {outcome.calendar.path}", soft_wrap=True)
    sent = outcome.confirmation
    if sent.delivery == "smtp":
        console.print(f"Confirmation emailed to {sent.to} via SMTP {sent.server}.", soft_wrap=True)
    else:
        console.print(
            f"Confirmation email written to {sent.eml_path}\n  (no SMTP server configured, "
            "so nothing was sent; set NATSFLEET_SMTP_HOST/_PORT to send it)",
            soft_wrap=True,
        )
    console.print("[bold]Cost ledger[/]")
    console.print(ledger_table(outcome.ledger))
