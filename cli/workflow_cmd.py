"""Workflow verbs: `approve` (resume or refuse a waiting step) and `workflows check`."""

from pathlib import Path

import click

from natsfleet.cli.console import console
from natsfleet.cli.task_cmd import (
    EXIT_OK,
    EXIT_USAGE,
    _json,
    _load_input,
    _nats,
    _prefix,
    _print_json,
    _run,
    id_argument,
)
from natsfleet.client import FleetClient
from natsfleet.supervisor.workflows import WorkflowError, load

_console = console()


@click.command("approve")
@id_argument("run_id", step=True)
@click.option("--input", "input_text", default=None, help="JSON for the next steps, or @file.")
@click.option("--reject", is_flag=True, help="Refuse instead of approving.")
@click.option("--note", default="", help="Why (kept with the decision).")
@_json
@_nats
@_prefix
def approve_command(
    run_id: str,
    input_text: str | None,
    reject: bool,
    note: str,
    as_json: bool,
    url: str | None,
    prefix: str | None,
) -> None:
    """Resume a task or workflow run waiting for approval (TASK_ID, RUN_ID or RUN_ID/STEP),
    or --reject it (a task's model sees --note as the refused tool's result)."""
    value = None if input_text is None else _load_input(input_text)

    async def body(client: FleetClient) -> int:
        ack = await client.approve(run_id, approved=not reject, input=value, note=note)
        if as_json:
            _print_json(ack)
        else:
            state = ack.state.value if ack.state else ""
            _console.print(f"{ack.task_id} {state}: {ack.detail}", highlight=False)
        return EXIT_OK

    _run(url, prefix, body)


@click.group("workflows")
def workflows_group() -> None:
    """Workflow files."""


@workflows_group.command("check")
@click.argument("sources", nargs=-1, required=True)
def check_command(sources: tuple[str, ...]) -> None:
    """Validate workflow files, folders or module:attribute specs, as the supervisor would."""
    try:
        catalog = load(sources)
    except WorkflowError as exc:
        _console.print(f"[red]invalid[/red]: {exc}", highlight=False)
        raise SystemExit(EXIT_USAGE) from None
    for name in catalog.names():
        defn = catalog.get(name)
        assert defn is not None
        skills = ", ".join(sorted(defn.skills()))
        _console.print(f"{name}: {len(defn.steps)} steps; skills: {skills}", highlight=False)
    if not catalog.names():
        _console.print(f"no workflows in {', '.join(str(Path(s)) for s in sources)}")
    raise SystemExit(EXIT_OK)
