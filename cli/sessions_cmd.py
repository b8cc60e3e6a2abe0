"""`natsfleet sessions list|show|delete`: conversations that outlive one task (docs/tools.md)."""

import time

import click
from rich.table import Table

from natsfleet.cli.task_cmd import (
    EXIT_OK,
    EXIT_USAGE,
    _console,
    _json,
    _nats,
    _prefix,
    _print_json,
    _run,
)
from natsfleet.client import FleetClient
from natsfleet.protocols import Bucket


def _bucket(client: FleetClient) -> str:
    return client.bus.subjects.bucket(Bucket.SESSIONS)


def _age(at_ms: int) -> str:
    if not at_ms:
        return "-"
    return f"{max(0.0, time.time() - at_ms / 1000):.0f} s ago"


@click.group("sessions")
def sessions_group() -> None:
    """Sessions: list them, show one's conversation, delete one."""


@sessions_group.command("list")
@_nats
@_prefix
@_json
def sessions_list(url: str | None, prefix: str | None, as_json: bool) -> None:
    """Every session: exchanges kept, tokens of its budget, compactions, holder."""
    from natsfleet.agents.loop.session_admin import list_sessions

    async def body(client: FleetClient) -> int:
        sessions = await list_sessions(client.bus.js, _bucket(client))
        if as_json:
            _print_json(sessions)
            return EXIT_OK
        table = Table("session", "exchanges", "tokens", "compactions", "updated", "held by")
        for s in sessions:
            conv = s.conversation
            budget = f" / {conv.budget_tokens}" if conv.budget_tokens else ""
            table.add_row(
                s.session_id,
                str(len(conv.exchanges)),
                f"{conv.tokens}{budget}",
                str(conv.compactions),
                _age(conv.updated_ms),
                s.holder or "",
            )
        _console.print(table)
        _console.print(f"{len(sessions)} sessions", highlight=False)
        return EXIT_OK

    _run(url, prefix, body)


@sessions_group.command("show")
@click.argument("session_id")
@_nats
@_prefix
@_json
def sessions_show(session_id: str, url: str | None, prefix: str | None, as_json: bool) -> None:
    """SESSION_ID's conversation: its summary, then each exchange's messages."""
    from natsfleet.agents.loop.session_admin import show_session

    async def body(client: FleetClient) -> int:
        info = await show_session(client.bus.js, _bucket(client), session_id)
        if info is None:
            _console.print(f"[red]no session[/red] {session_id}", highlight=False)
            return EXIT_USAGE
        if as_json:
            _print_json(info)
            return EXIT_OK
        conv = info.conversation
        _console.print(
            f"session {session_id}: {len(conv.exchanges)} exchanges, {conv.tokens} tokens"
            f" (budget {conv.budget_tokens}), {conv.compactions} compactions"
            + (f", held by task {info.holder}" if info.holder else ""),
            highlight=False,
            markup=False,
        )
        if conv.summary is not None:
            label = " [offline]" if conv.summary.offline else ""
            _console.print(
                f"summary{label} (by task {conv.summary.task_id}): {conv.summary.text}",
                highlight=False,
                markup=False,
            )
        for exchange in conv.exchanges:
            _console.print(f"-- task {exchange.task_id}", highlight=False, markup=False)
            for message in exchange.messages:
                calls = " ".join(f"[calls {c.name}]" for c in message.tool_calls)
                text = f"{message.content} {calls}".strip()
                _console.print(f"{message.role}: {text}", highlight=False, markup=False)
        return EXIT_OK

    _run(url, prefix, body)


@sessions_group.command("delete")
@click.argument("session_id")
@_nats
@_prefix
def sessions_delete(session_id: str, url: str | None, prefix: str | None) -> None:
    """Delete SESSION_ID (its conversation and lock); a loop running on it fails."""
    from natsfleet.agents.loop.session_admin import delete_session

    async def body(client: FleetClient) -> int:
        if not await delete_session(client.bus.js, _bucket(client), session_id):
            _console.print(f"[red]no session[/red] {session_id}", highlight=False)
            return EXIT_USAGE
        _console.print(f"deleted session {session_id}", highlight=False)
        return EXIT_OK

    _run(url, prefix, body)
