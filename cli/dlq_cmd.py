"""`natsfleet dlq list|show|retry`: the dead-letter queue through the control API."""

import click
from rich.table import Table

from natsfleet.cli.task_cmd import (
    EXIT_OK,
    _before,
    _console,
    _json,
    _nats,
    _prefix,
    _print_json,
    _run,
)
from natsfleet.client import FleetClient
from natsfleet.protocols import DlqRequest


@click.group("dlq")
def dlq_group() -> None:
    """The dead-letter queue: list entries, show one, re-run its task."""


@dlq_group.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@_before
@_nats
@_prefix
@_json
def dlq_list(
    limit: int, before_seq: int | None, url: str | None, prefix: str | None, as_json: bool
) -> None:
    """Newest entries first, one page: seq, reason, task, subject, error."""

    async def body(client: FleetClient) -> int:
        reply = await client.dlq(DlqRequest(action="list", limit=limit, before_seq=before_seq))
        if as_json:
            _print_json(reply)
            return EXIT_OK
        table = Table("seq", "reason", "task", "subject", "error")
        for e in reply.entries:
            table.add_row(str(e.seq), e.reason, e.task_id or "", e.subject, e.error[:80])
        _console.print(table)
        more = f"; next page: --before {reply.next_before_seq}" if reply.more else ""
        _console.print(f"{len(reply.entries)} of {reply.total} entries{more}", highlight=False)
        return EXIT_OK

    _run(url, prefix, body)


@dlq_group.command("show")
@click.argument("seq", type=int)
@_nats
@_prefix
def dlq_show(seq: int, url: str | None, prefix: str | None) -> None:
    """The whole entry SEQ as JSON (payload, original headers, attempts)."""

    async def body(client: FleetClient) -> int:
        _print_json((await client.dlq(DlqRequest(action="show", seq=seq))).entry)
        return EXIT_OK

    _run(url, prefix, body)


@dlq_group.command("retry")
@click.argument("seq", type=int)
@_nats
@_prefix
def dlq_retry(seq: int, url: str | None, prefix: str | None) -> None:
    """Run the task of entry SEQ again, as a new task; prints the new task id."""

    async def body(client: FleetClient) -> int:
        reply = await client.dlq(DlqRequest(action="retry", seq=seq))
        click.echo(reply.task_id or "")
        return EXIT_OK

    _run(url, prefix, body)
