"""`natsfleet demo`: the first thing a new user runs (`make demo`).

It starts an embedded nats-server, a supervisor and one process per built-in
agent, runs the content job (research, write, edit until approved) on the
shipped corpus and the travel job (a sandbox booking with an approval before
payment), prints what they produced and what they cost, then lets the built-in
`assistant` plan an article and a trip with the fleet's skills as tools (killing
its instance mid-run to show the journal's replay, cli/demo_assistant.py), and
stops everything.
Without ANTHROPIC_API_KEY / OPENAI_API_KEY the agents use the offline provider
and say so; with a key the same demo uses the real models.
"""

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path

import click
from rich.console import Console

from natsfleet.agents.llm_binding import default_llm_config, process_llm_config
from natsfleet.cli.demo_assistant import run_article, run_trip, show_replays, start_assistant
from natsfleet.cli.demo_fleet import DEMO_AGENTS, DemoFleet, FleetStartError
from natsfleet.cli.demo_render import event_line, section, show_content, show_travel
from natsfleet.cli.demo_steps import (
    CONTENT_QUESTION,
    TRAVEL_REQUEST,
    narrate,
    run_content,
    run_travel,
)
from natsfleet.protocols import NatsFleetError


def _usable_models() -> list[str]:
    config = process_llm_config()
    return [
        m.name
        for m in config.models
        if (p := config.providers.get(m.provider)) is not None
        and (p.api_key() is not None or not p.require_key)
    ]


def _llm_mode() -> str:
    config = process_llm_config()
    usable = _usable_models()
    if usable:
        return "models: " + ", ".join(usable)
    keys = "ANTHROPIC_API_KEY or OPENAI_API_KEY" if config == default_llm_config() else "a key"
    return (
        f"[bold yellow]OFFLINE[/] (no {keys} set): deterministic stand-ins answer, "
        "labelled offline-extractive; set a key to use real models"
    )


@click.command("demo")
@click.option("--question", default=CONTENT_QUESTION, show_default=True)
@click.option("--trip", "trip_request", default=TRAVEL_REQUEST, show_default=True)
@click.option(
    "--dir",
    "run_root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".natsfleet"),
    show_default=True,
    help="Where the run's store, logs, calendar and mail go.",
)
def demo_command(question: str, trip_request: str, run_root: Path) -> None:
    """Run a content and a travel job on a local fleet (no API keys needed)."""
    logging.basicConfig(level=logging.ERROR)
    run_dir = (run_root / f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}").resolve()
    console = Console(highlight=False)
    try:
        asyncio.run(_demo(console, run_dir, question, trip_request))
    except FleetStartError as exc:
        raise click.ClickException(str(exc)) from None
    except NatsFleetError as exc:
        raise click.ClickException(
            f"{type(exc).__name__}: {exc} (logs in {run_dir / 'logs'})"
        ) from None


async def _demo(console: Console, run_dir: Path, question: str, trip_request: str) -> None:
    section(console, "natsfleet demo")
    console.print(f"LLM: {_llm_mode()}")
    console.print(f"run folder: {run_dir}")
    started = time.monotonic()
    async with DemoFleet(run_dir) as fleet:
        console.print(
            f"started nats-server ({fleet.server.url}), a supervisor and "
            f"{len(DEMO_AGENTS)} agent processes: {', '.join(DEMO_AGENTS)} "
            f"({time.monotonic() - started:.1f} s)"
        )

        narrator = asyncio.create_task(narrate(fleet.client, lambda e: event_line(console, e)))
        try:
            section(console, "1. Content workflow: research -> write -> edit until approved")
            console.print(f"Question: {question}")
            content = await run_content(fleet.client, question)
            show_content(console, content)

            section(console, "2. Travel workflow: book a flight, pay only after approval")
            console.print(f"Request: {trip_request!r}")
            travel = await run_travel(fleet.client, trip_request)
            show_travel(console, travel)
        finally:
            narrator.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await narrator

        offline = not _usable_models()
        policy = " (offline: a tool policy stands in for the model)" if offline else ""
        section(console, f"3. Assistant: its model plans with the fleet's skills{policy}")
        first = await start_assistant(fleet, "assistant-1")
        await run_article(console, fleet.client, offline)
        console.print()
        trip = await run_trip(console, fleet, first, offline)
        show_replays(console, trip, offline)

        section(console, "Stopping")
        killed = await fleet.stop()
    if killed:
        console.print(f"[red]had to kill: {', '.join(killed)}[/]")
    else:
        console.print("agents drained, supervisor and nats-server stopped: nothing left running.")
    console.print(f"logs: {run_dir / 'logs'}  (total {time.monotonic() - started:.1f} s)")
