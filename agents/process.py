"""Running one agent instance as this OS process: event loop, signals, exit code."""

import asyncio
import logging
import signal

from natsfleet.agents.agent import Agent, AgentConfig
from natsfleet.agents.runtime import AgentRuntime
from natsfleet.bus import BadNatsConfig, BusConfig, ConnectionLost, Unreachable
from natsfleet.process.loop import loop_factory

log = logging.getLogger(__name__)


async def serve(runtime: AgentRuntime) -> None:
    """Run `runtime` until SIGTERM or SIGINT has drained it.

    The first signal drains with the grace period; a second one hands back
    at once.
    """
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        log.info("%s received", sig.name)
        runtime.shutdown(immediate=runtime.draining)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await runtime.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run_agent(
    agent: Agent,
    *,
    bus_config: BusConfig | None = None,
    instance_id: str | None = None,
    config: AgentConfig | None = None,
) -> int:
    """Run one instance of `agent` in this process until it is signalled; the exit code.

    Returns 0 after a clean drain (or a signal before NATS was reachable),
    `ConnectionLost.exit_code` (6) when the connection was closed for good and
    `Unreachable.exit_code` (5) when nats-py gave up connecting at start: the
    instance can no longer work, and its process manager should restart it;
    `BadNatsConfig.exit_code` (2) for a malformed URL. Other errors at start raise.
    """
    runtime = AgentRuntime(agent, bus_config=bus_config, instance_id=instance_id, config=config)
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(serve(runtime))
    except (BadNatsConfig, ConnectionLost, Unreachable) as exc:
        log.error("instance %s exits with code %d: %s", runtime.instance_id, exc.exit_code, exc)
        return exc.exit_code
    return 0
