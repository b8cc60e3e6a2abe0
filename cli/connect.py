"""How a client verb reaches NATS: a bounded connect, one clear line, documented exit codes.

Every verb that talks to a fleet (`submit`, `status`, `tasks`, `cancel`,
`watch`, `approve`, `dlq`, `trace`, `agents`) gives up connecting after
`--connect-timeout` seconds (default 3, env `NATSFLEET_CONNECT_TIMEOUT`) and
exits 5 with one line saying where it tried and why it failed; a connection
closed for good while the verb runs (a `watch`, a `submit --wait`) exits 6; a
malformed URL exits 2 at once.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from natsfleet.bus import BadNatsConfig, Bus, BusConfig, ConnectionLost, Unreachable
from natsfleet.telemetry.redact import redact

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., object])

DEFAULT_CONNECT_TIMEOUT_S = 3.0
#: What `report` explains: bad settings (exit 2), NATS not reachable (exit 5) or
#: gone for good (exit 6).
NATS_ERRORS = (BadNatsConfig, Unreachable, ConnectionLost)
_META_KEY = "natsfleet.connect_timeout_s"


def _remember(ctx: click.Context, _: click.Parameter, value: float) -> float:
    # Kept in the context, not passed to each command: verbs keep their signatures.
    ctx.meta[_META_KEY] = value
    return value


def connect_timeout_option(command: F) -> F:
    """`--connect-timeout S` for a client verb (read back by `connect_timeout_s`)."""
    option = click.option(
        "--connect-timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=DEFAULT_CONNECT_TIMEOUT_S,
        show_default=True,
        envvar="NATSFLEET_CONNECT_TIMEOUT",
        expose_value=False,
        callback=_remember,
        help="Seconds to reach NATS before giving up (exit 5).",
    )
    return option(command)


def connect_timeout_s() -> float:
    """The running command's `--connect-timeout`."""
    ctx = click.get_current_context(silent=True)
    value = ctx.meta.get(_META_KEY) if ctx is not None else None
    return value if isinstance(value, float) else DEFAULT_CONNECT_TIMEOUT_S


def bus_config(url: str | None, prefix: str | None, name: str | None = None) -> BusConfig:
    """`BusConfig.from_env` with a malformed setting as a usage error."""
    try:
        return BusConfig.from_env(url=url, prefix=prefix, name=name)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


async def run_connected(
    config: BusConfig,
    body: Callable[[Bus], Awaitable[T]],
    *,
    role: str = "cli",
    instance: str = "0",
) -> T:
    """Connect within `--connect-timeout`, run `body`, close. Raises `BadNatsConfig`,
    `Unreachable`, or `ConnectionLost` if the connection is closed for good while
    `body` runs."""
    # The verb reports NATS trouble itself, in one line (`report`): the
    # connection's own log lines would only repeat it.
    logging.getLogger("natsfleet.bus.connection").setLevel(logging.CRITICAL)
    bus = Bus(config, role=role, instance=instance)
    await bus.connect(within_s=connect_timeout_s())
    try:
        return await bus.guard(body(bus))
    finally:
        await bus.close()


def report(exc: BadNatsConfig | Unreachable | ConnectionLost) -> int:
    """One line on stderr; the error's exit code (2, 5 or 6) to exit with."""
    click.echo(redact(f"error: {exc}"), err=True)
    return exc.exit_code
