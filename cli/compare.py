"""`natsfleet compare "PROMPT" --models A,B,C`: one prompt, several models, side by side.

Output only: the logic is `natsfleet.agents.llm.compare`.
"""

import asyncio
import os
from pathlib import Path

import click
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from natsfleet.agents.llm import (
    OFFLINE_MARK,
    OFFLINE_MODEL,
    LaneResult,
    LLMConfig,
    Router,
    StreamEvent,
    StreamFailed,
    TextDelta,
    compare,
    load_config,
    user,
)

_TAIL_CHARS = 600


def _load(path: str | None) -> LLMConfig:
    """`--config`, else $NATSFLEET_LLM_CONFIG, else ./natsfleet.toml's [llm], else offline."""
    chosen = path or os.environ.get("NATSFLEET_LLM_CONFIG")
    if chosen:
        table = "llm" if _has_llm_table(chosen) else None
        return load_config(chosen, table=table)
    default = Path("natsfleet.toml")
    if default.exists() and _has_llm_table(str(default)):
        return load_config(default, table="llm")
    return LLMConfig()


def _has_llm_table(path: str) -> bool:
    return any(line.strip().startswith("[llm") for line in Path(path).read_text().splitlines())


def _lanes(models: list[str], texts: dict[str, str], errors: dict[str, str]) -> Table:
    grid = Table.grid(expand=True, padding=(0, 1))
    for _ in models:
        grid.add_column(ratio=1)
    panels = []
    for name in models:
        body = Text(texts[name][-_TAIL_CHARS:])
        if name in errors:
            body.append(f"\n{errors[name]}", style="bold red")
        title = f"{name} OFFLINE" if texts[name].startswith(OFFLINE_MARK) else name
        panels.append(Panel(body, title=title, border_style="red" if name in errors else "cyan"))
    grid.add_row(*panels)
    return grid


def _summary(results: list[LaneResult]) -> Table:
    table = Table(title="compare")
    for column in ("model", "provider", "first chunk ms", "latency ms", "in", "out", "cost $"):
        table.add_column(column, justify="left" if column in ("model", "provider") else "right")
    for lane in results:
        r = lane.response
        if r is None:
            error = lane.error.detail if lane.error else "no response"
            table.add_row(lane.model, "-", "-", f"{lane.latency_ms:.0f}", "-", "-", error)
            continue
        provider = r.provider
        if r.offline:
            provider += " OFFLINE"
        first = f"{lane.first_chunk_ms:.0f}" if lane.first_chunk_ms is not None else "-"
        table.add_row(
            lane.model,
            provider,
            first,
            f"{lane.latency_ms:.0f}",
            str(r.usage.input_tokens + r.usage.cache_read_tokens),
            str(r.usage.output_tokens),
            f"{r.cost_usd:.6f}",
        )
    return table


def _lanes_for(router: Router, asked: list[str]) -> tuple[list[str], str]:
    """The deployments to compare, and a note when the offline provider stands in.

    No `--models`: every model the router can serve. With no API key anywhere
    the router serves only the offline deployment: named models it cannot
    serve are compared on it (labelled OFFLINE) instead of all failing.
    """
    served = [m.name for m in router.models]
    if not asked:
        return served, ""
    missing = [name for name in asked if name not in served]
    if not missing or not router.offline:
        return asked, ""
    kept = [name for name in asked if name in served]
    if OFFLINE_MODEL not in kept:
        kept.append(OFFLINE_MODEL)
    note = (
        f"no API key configured for {', '.join(missing)}: "
        f"answering with the offline provider ({OFFLINE_MODEL}, OFFLINE)"
    )
    return kept, note


async def _run(
    prompt: str,
    asked: list[str],
    config: LLMConfig,
    system: str,
    max_tokens: int,
    timeout_s: float,
) -> list[LaneResult]:
    errors: dict[str, str] = {}
    console = Console()
    async with Router.from_config(config) as router:
        models, note = _lanes_for(router, asked)
        if note:
            console.print(note, style="yellow", highlight=False)
        texts = dict.fromkeys(models, "")
        with Live(_lanes(models, texts, errors), console=console, refresh_per_second=12) as live:

            async def sink(model: str, event: StreamEvent) -> None:
                if isinstance(event, TextDelta):
                    texts[model] += event.text
                elif isinstance(event, StreamFailed):
                    errors[model] = f"{event.error_type}: {event.detail}"
                live.update(_lanes(models, texts, errors))

            request = user(prompt, system=system, max_tokens=max_tokens)
            results = await compare(router, request, models, timeout_s=timeout_s, sink=sink)
            live.update(Group(_lanes(models, texts, errors), _summary(results)))
    return results


@click.command("compare")
@click.argument("prompt")
@click.option(
    "--models",
    "-m",
    default="",
    help="Comma-separated configured model names (default: every model with a key; "
    "without any key, the offline provider).",
)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="LLM config TOML.")
@click.option("--system", default="", help="System prompt.")
@click.option("--max-tokens", default=512, show_default=True, type=int)
@click.option("--timeout", "timeout_s", default=120.0, show_default=True, type=float)
def compare_command(
    prompt: str,
    models: str,
    config_path: str | None,
    system: str,
    max_tokens: int,
    timeout_s: float,
) -> None:
    """Send PROMPT to several models in parallel; show their streams, then latency, tokens, cost."""
    names = [n.strip() for n in models.split(",") if n.strip()]
    results = asyncio.run(_run(prompt, names, _load(config_path), system, max_tokens, timeout_s))
    if not any(r.ok for r in results):
        raise SystemExit(1)
