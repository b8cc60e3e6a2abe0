"""The `natsfleet` command: argument parsing and output only.

Each group of verbs lives in its own module and is registered here.
"""

import importlib
import sys
import traceback
from types import TracebackType
from typing import Any

import click

from natsfleet.telemetry.redact import redact

#: Every verb and where it lives: a module is imported only when its verb
#: runs (or for `--help`), so `natsfleet agent run` does not load the
#: supervisor, deploy, gateway or demo code (tests/test_cli_imports.py).
COMMANDS: dict[str, tuple[str, str]] = {
    "server": ("server_cmd", "server_command"),
    "schema": ("server_cmd", "schema_command"),
    "demo": ("demo_cmd", "demo_command"),
    "compare": ("compare", "compare_command"),
    "trace": ("trace_cmd", "trace_command"),
    "up": ("up_cmd", "up_command"),
    "down": ("up_cmd", "down_command"),
    "ps": ("up_cmd", "ps_command"),
    "deploy": ("deploy_cmd", "deploy_command"),
    "wait-nats": ("deploy_cmd", "wait_nats_command"),
    "supervisor": ("supervisor_cmd", "supervisor_command"),
    "submit": ("task_cmd", "submit_command"),
    "status": ("task_cmd", "status_command"),
    "tasks": ("task_cmd", "tasks_command"),
    "cancel": ("task_cmd", "cancel_command"),
    "watch": ("task_cmd", "watch_command"),
    "approve": ("workflow_cmd", "approve_command"),
    "workflows": ("workflow_cmd", "workflows_group"),
    "dlq": ("dlq_cmd", "dlq_group"),
    "sessions": ("sessions_cmd", "sessions_group"),
    "gateway": ("gateway_cmd", "gateway_group"),
    "llm": ("llm_cmd", "llm_command"),
    "agent": ("agent_cmd", "agent_group"),
    "agents": ("agent_cmd", "agents_command"),
}


class _RedactingGroup(click.Group):
    """Error messages leave the CLI with secrets redacted; verbs are loaded
    from `COMMANDS` when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        module = importlib.import_module(f"natsfleet.cli.{where[0]}")
        command: click.Command = getattr(module, where[1])
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            message = redact(exc.message)
            if message == exc.message:
                raise
            raise click.ClickException(message) from None


def _redacting_excepthook(
    kind: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    sys.stderr.write(redact("".join(traceback.format_exception(kind, exc, tb))))


@click.group(cls=_RedactingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="natsfleet")
def cli() -> None:
    """Run fleets of AI agents as independent processes over NATS."""


def main() -> None:
    sys.excepthook = _redacting_excepthook
    cli()


if __name__ == "__main__":
    main()
