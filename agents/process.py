"""Running one agent instance as this OS process: event loop, signals, exit code."""

import asyncio
import logging
import signal

from natsfleet.agents.agent import Agent, AgentConfig
from natsfleet.agents.runtime import AgentRuntime
from natsfleet.bus import BusConfig
from natsfleet.bus.loop import loop_factory

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

    Returns 0 after a clean drain. Errors at start (NATS unreachable, ...) raise.
    """
    runtime = AgentRuntime(agent, bus_config=bus_config, instance_id=instance_id, config=config)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve(runtime))
    return 0
