"""`natsfleet trace TASK_ID`: a task's trace as a tree with timings, in the terminal."""

import asyncio
import sys

import click
from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from natsfleet.bus import Bus
from natsfleet.cli.connect import (
    NATS_ERRORS,
    bus_config,
    connect_timeout_option,
    report,
    run_connected,
)
from natsfleet.cli.task_cmd import id_argument
from natsfleet.client.traces import SpanNode, build_tree, read_spans, spans_of_task
from natsfleet.protocols import SpanRecord, encode

_BAR_WIDTH = 30


@click.command("trace")
@id_argument("task_id")
@click.option("--nats", "url", envvar="NATS_URL", default=None, help="NATS URL(s).")
@click.option("--prefix", envvar="NATSFLEET_PREFIX", default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the spans as JSON lines.")
@connect_timeout_option
def trace_command(task_id: str, url: str | None, prefix: str | None, as_json: bool) -> None:
    """Show TASK_ID's trace (spans published with NATSFLEET_TRACE_NATS=1)."""
    config = bus_config(url, prefix)
    try:
        spans = asyncio.run(run_connected(config, lambda bus: _load(bus, task_id)))
    except NATS_ERRORS as exc:
        sys.exit(report(exc))
    if not spans:
        click.echo(
            f"no spans for task {task_id}: were the processes started with "
            "NATSFLEET_TRACE_NATS=1, and is the task younger than the SPANS retention?",
            err=True,
        )
        sys.exit(1)
    if as_json:
        for span in sorted(spans, key=lambda s: s.start_ns):
            sys.stdout.write(encode(span).decode() + "\n")
        return
    # Piped output would be cut at 80 columns; keep whole lines for grep and files.
    width = None if sys.stdout.isatty() else 240
    Console(width=width).print(render(build_tree(spans)))


async def _load(bus: Bus, task_id: str) -> list[SpanRecord]:
    return spans_of_task(await read_spans(bus), task_id)


def render(roots: list[SpanNode]) -> Tree:
    """A waterfall: each span's offset and duration as a bar on one time axis."""
    start = min(node.span.start_ns for node in roots)
    end = max(_last_end(node) for node in roots)
    total_ns = max(end - start, 1)
    tree = Tree(Text(f"trace {roots[0].span.trace_id}  ({total_ns / 1e6:.1f} ms)", style="bold"))
    for node in roots:
        _add(tree, node, start, total_ns)
    return tree


def _last_end(node: SpanNode) -> int:
    return max([node.span.end_ns, *(_last_end(child) for child in node.children)])


def _add(parent: Tree, node: SpanNode, start_ns: int, total_ns: int) -> None:
    span = node.span
    offset = int((span.start_ns - start_ns) / total_ns * _BAR_WIDTH)
    width = max(1, int((span.end_ns - span.start_ns) / total_ns * _BAR_WIDTH))
    bar = " " * offset + "█" * min(width, _BAR_WIDTH - offset)
    label = Text()
    label.append(f"{bar:<{_BAR_WIDTH}} ", style="red" if span.status == "error" else "cyan")
    label.append(f"{node.duration_ms:8.2f} ms  ")
    label.append(span.name, style="bold")
    label.append(f"  [{span.service}]", style="dim")
    if span.status == "error":
        label.append(f"  error: {span.status_detail}", style="red")
    branch = parent.add(label)
    for child in node.children:
        _add(branch, child, start_ns, total_ns)
