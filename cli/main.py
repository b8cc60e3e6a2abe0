"""The `natsfleet` command: argument parsing and output only.

Each group of verbs lives in its own module and is registered here.
"""

import sys
import traceback
from types import TracebackType
from typing import Any

import click

from natsfleet.cli.agent_cmd import AGENT_COMMANDS
from natsfleet.cli.compare import compare_command
from natsfleet.cli.demo_cmd import demo_command
from natsfleet.cli.deploy_cmd import deploy_command, wait_nats_command
from natsfleet.cli.dlq_cmd import dlq_group
from natsfleet.cli.gateway_cmd import gateway_group
from natsfleet.cli.llm_cmd import llm_command
from natsfleet.cli.server_cmd import schema_command, server_command
from natsfleet.cli.sessions_cmd import sessions_group
from natsfleet.cli.supervisor_cmd import supervisor_command
from natsfleet.cli.task_cmd import (
    cancel_command,
    status_command,
    submit_command,
    tasks_command,
    watch_command,
)
from natsfleet.cli.trace_cmd import trace_command
from natsfleet.cli.up_cmd import down_command, ps_command, up_command
from natsfleet.cli.workflow_cmd import approve_command, workflows_group
from natsfleet.telemetry.redact import redact


class _RedactingGroup(click.Group):
    """Error messages leave the CLI with secrets redacted."""

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


cli.add_command(server_command)
cli.add_command(schema_command)
cli.add_command(demo_command)
cli.add_command(compare_command)
cli.add_command(trace_command)
cli.add_command(up_command)
cli.add_command(down_command)
cli.add_command(ps_command)
cli.add_command(deploy_command)
cli.add_command(wait_nats_command)
cli.add_command(supervisor_command)
cli.add_command(submit_command)
cli.add_command(status_command)
cli.add_command(tasks_command)
cli.add_command(cancel_command)
cli.add_command(watch_command)
cli.add_command(approve_command)
cli.add_command(workflows_group)
cli.add_command(dlq_group)
cli.add_command(sessions_group)
cli.add_command(gateway_group)
cli.add_command(llm_command)
for command in AGENT_COMMANDS:
    cli.add_command(command)


def main() -> None:
    sys.excepthook = _redacting_excepthook
    cli()


if __name__ == "__main__":
    main()
