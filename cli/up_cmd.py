"""`natsfleet up`, `natsfleet down` and `natsfleet ps`."""

import asyncio
import logging
import signal
import sys
from pathlib import Path

import click
import msgspec
from rich.table import Table

from natsfleet.cli.console import console
from natsfleet.cli.deploy_cmd import check_workflows
from natsfleet.deploy import (
    DeployError,
    FleetFile,
    Launcher,
    LineSink,
    PrefixedWriter,
    bring_down,
    detach_command,
    load_fleet,
    ps_rows,
    running_state,
    start_detached,
)

_state_dir = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".natsfleet"),
    show_default=True,
    help="Where the state file (pids) and detached logs live.",
)


@click.command("up")
@click.argument("fleet_path", default="fleet.toml", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-d", "--detach", is_flag=True, help="Run in the background; see ps/down.")
@click.option("--no-color", is_flag=True, help="Plain log prefixes.")
@_state_dir
def up_command(fleet_path: Path, detach: bool, no_color: bool, state_dir: Path) -> None:
    """Run the fleet in FLEET_PATH (default fleet.toml): NATS, supervisors, agents.

    Ctrl-C or SIGTERM drains the agents, then stops the supervisors, then the
    embedded server. A crashed process is restarted with backoff, up to the
    fleet file's [up] restart limit.
    """
    state_dir = state_dir.resolve()
    try:
        fleet_file = load_fleet(fleet_path)
        check_workflows(fleet_file)
        existing = running_state(state_dir)
        if existing is not None:
            raise DeployError(
                f"a fleet is already up for {state_dir} (launcher pid "
                f"{existing.launcher_pid}); `natsfleet down` first"
            )
        if detach:
            state = start_detached(fleet_file.path, state_dir, command=detach_command())
            click.echo(
                f"fleet up in the background (launcher pid {state.launcher_pid}, "
                f"{len(state.children)} processes); logs: {state_dir / 'up.log'}\n"
                "`natsfleet ps` to look, `natsfleet down` to stop it"
            )
            return
        color = not no_color and fleet_file.fleet.up.color and sys.stdout.isatty()
        sink = PrefixedWriter(sys.stdout, color=color)
        asyncio.run(_run(fleet_file, sink, state_dir))
    except DeployError as exc:
        raise click.ClickException(str(exc)) from None


async def _run(fleet_file: FleetFile, sink: LineSink, state_dir: Path) -> None:
    launcher = Launcher(fleet_file, sink=sink, state_dir=state_dir)
    handler = _SinkHandler(sink)
    deploy_log = logging.getLogger("natsfleet.deploy")
    deploy_log.addHandler(handler)
    deploy_log.setLevel(logging.INFO)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, launcher.stop)
    try:
        await launcher.run()
    finally:
        deploy_log.removeHandler(handler)
    sink("up", "all processes stopped")


class _SinkHandler(logging.Handler):
    """The launcher's own messages, interleaved with its children's as `up | ...`."""

    def __init__(self, sink: LineSink) -> None:
        super().__init__()
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self._sink("up", f"{record.levelname.lower()}: {record.getMessage()}")


@click.command("down")
@_state_dir
@click.option("--timeout-s", type=float, default=120.0, show_default=True)
def down_command(state_dir: Path, timeout_s: float) -> None:
    """Stop a fleet started with `natsfleet up --detach`, in order, and wait."""
    try:
        state = bring_down(state_dir.resolve(), timeout_s=timeout_s)
    except DeployError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"fleet down (launcher pid {state.launcher_pid} exited)")


@click.command("ps")
@_state_dir
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def ps_command(state_dir: Path, as_json: bool) -> None:
    """Show each process of the running fleet: name, pid, restarts, state, uptime."""
    state = running_state(state_dir.resolve())
    if state is None:
        if as_json:
            click.echo('{"running": false, "processes": []}')
            return
        click.echo(f"no fleet is up for {state_dir}")
        sys.exit(1)
    rows = ps_rows(state)
    if as_json:
        doc = {
            "running": True,
            "launcher_pid": state.launcher_pid,
            "fleet_file": state.fleet_file,
            "nats_url": state.nats_url,
            "prefix": state.prefix,
            "processes": rows,
        }
        click.echo(msgspec.json.format(msgspec.json.encode(doc)).decode())
        return
    table = Table("name", "kind", "pid", "restarts", "state", "uptime", "note")
    for row in rows:
        table.add_row(
            row.name,
            row.kind,
            str(row.pid or "-"),
            str(row.restarts),
            row.state,
            _uptime(row.uptime_s),
            row.message,
        )
    out = console()
    out.print(f"fleet {state.fleet_file} (launcher pid {state.launcher_pid})")
    out.print(table)


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
