"""How the demo prints: sections, the article with its sources, ledgers, the itinerary."""

from collections.abc import Sequence
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table

from natsfleet.agents.tools.travel import format_money
from natsfleet.cli.demo_steps import ContentOutcome, LedgerRow, TravelOutcome
from natsfleet.protocols import TaskEvent, TaskState, Usage


def section(console: Console, title: str) -> None:
    console.print()
    console.rule(f"[bold]{title}")


def event_line(console: Console, event: TaskEvent) -> None:
    """One line per step task that ended or got stuck, and per run waiting for a person."""
    if event.state == TaskState.INPUT_REQUIRED:
        console.print("  [yellow]waiting[/]   for a person's approval (natsfleet approve RUN_ID)")
    elif event.skill and event.state in _SHOWN:
        colour = "green" if event.state == TaskState.COMPLETED else "red"
        where = f"by {event.instance_id}" if event.instance_id else ""
        console.print(f"  [{colour}]{event.state.value:<9}[/] {event.skill:<18} {where}")


_SHOWN = {TaskState.COMPLETED, TaskState.FAILED, TaskState.RETRYING}


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
    out = outcome.output
    draft = out.article
    state = "approved" if out.verdict == "approve" else f"{out.verdict} (out of rounds)"
    console.print(
        f"\nEditor's verdict: [bold]{state}[/] after {out.rounds or 1} round(s); "
        f"{draft.words} words; written by {draft.model}."
    )
    for note in out.notes or ():
        console.print(f"  - {note}")
    console.print(Panel(Markdown(draft.text), title="The article", expand=False, width=100))
    console.print("[bold]Sources[/]")
    for source in draft.sources:
        console.print(f"  [{source.n}] {source.title} (examples/corpus/{source.location})")
    console.print(f"\n[bold]Cost ledger[/] (workflow run {outcome.run_id})")
    console.print(ledger_table(outcome.ledger))


def show_travel(console: Console, outcome: TravelOutcome) -> None:
    out = outcome.output
    booking, offer = out.itinerary, out.itinerary.offer
    console.print(f"\nAsked before paying: {outcome.prompt}")
    console.print("Answer: approved (automatically, by the demo).")
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
    paid = format_money(out.payment.amount_cents, out.payment.currency)
    itinerary.add_row("paid", f"{paid}, payment {out.payment.payment_id}")
    label = "SANDBOX - no real flight was booked and no money moved" if booking.sandbox else ""
    console.print(Panel(itinerary, title=f"Itinerary {label}".strip(), expand=False))
    console.print(f"Calendar file (.ics): {out.calendar.path}", soft_wrap=True)
    sent = out.confirmation
    if sent.delivery == "smtp":
        console.print(f"Confirmation emailed to {sent.to} via SMTP {sent.server}.", soft_wrap=True)
    else:
        console.print(
            f"Confirmation email written to {sent.eml_path}\n  (no SMTP server configured, "
            "so nothing was sent; set NATSFLEET_SMTP_HOST/_PORT to send it)",
            soft_wrap=True,
        )
    console.print(f"[bold]Cost ledger[/] (workflow run {outcome.run_id})")
    console.print(ledger_table(outcome.ledger))
