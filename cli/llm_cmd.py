"""`natsfleet llm`: the fleet-wide LLM governor's state (rates, health, budgets)."""

import click
from nats.js.errors import BucketNotFoundError
from rich.table import Table

from natsfleet.agents.llm.governor_view import GovernorView, read_view
from natsfleet.cli.task_cmd import EXIT_OK, _console, _json, _nats, _prefix, _print_json, _run
from natsfleet.client import FleetClient
from natsfleet.protocols import Bucket


def _limit(value: int | None) -> str:
    return "-" if value is None else str(value)


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def render(view: GovernorView) -> None:
    if not (view.rates or view.health or view.budgets):
        _console.print("no governor state yet (no call has gone through a governed router)")
        return
    if view.rates:
        table = Table(
            "scope", "name", "requests", "limit", "tokens", "limit", "window", "booked ahead"
        )
        for r in view.rates:
            table.add_row(
                r.kind, r.name, f"{r.requests:g}", _limit(r.rpm), f"{r.tokens:g}", _limit(r.tpm),
                f"{r.window_s:g} s", f"{r.booked_ahead_s:g} s",
            )  # fmt: skip
        _console.print(table)
    if view.health:
        table = Table("deployment", "circuit", "cooling", "failures", "reason", "by")
        for h in view.health:
            table.add_row(
                h.deployment, h.circuit, f"{h.cooling_s:g} s", str(h.recent_failures),
                h.reason, h.updated_by,
            )  # fmt: skip
        _console.print(table)
    if view.budgets:
        table = Table("budget", "limit", "spent", "reserved", "in flight", "calls")
        for b in view.budgets:
            table.add_row(
                b.scope, _usd(b.limit_usd), _usd(b.spent_usd), _usd(b.reserved_usd),
                str(b.holds), str(b.calls),
            )  # fmt: skip
        _console.print(table)


@click.command("llm")
@_nats
@_prefix
@_json
def llm_command(url: str | None, prefix: str | None, as_json: bool) -> None:
    """The fleet-wide LLM governor: each deployment's, API key's and tenant's rate
    and limit, cooldowns and circuits, budgets spent and reserved."""

    async def body(client: FleetClient) -> int:
        try:
            kv = await client.bus.kv(Bucket.GOVERNOR)
        except BucketNotFoundError:
            kv = None  # no governed process has run and nothing provisioned the bucket
        view = GovernorView() if kv is None else await read_view(kv)
        if as_json:
            _print_json(view)
        else:
            render(view)
        return EXIT_OK

    _run(url, prefix, body)
