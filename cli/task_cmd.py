"""Task verbs: `submit`, `status`, `tasks`, `cancel`, `watch`.

Exit codes: 0 completed (or submitted without --wait), 1 failed, 2 usage
error, 3 rejected or canceled, 4 the wait timed out (click's own usage errors
exit 2 as well), 5 NATS not reachable within --connect-timeout, 6 the NATS
connection closed for good (cli/connect.py).
"""

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec
from rich.markup import escape
from rich.table import Column, Table

from natsfleet.bus import NoResponders
from natsfleet.cli.connect import (
    NATS_ERRORS,
    bus_config,
    connect_timeout_option,
    report,
    run_connected,
)
from natsfleet.cli.console import console
from natsfleet.cli.workflow_view import print_workflow
from natsfleet.client import FleetClient, TaskRejected, WaitTimeout
from natsfleet.protocols import (
    ErrorCode,
    InFlight,
    InvalidValue,
    NatsFleetError,
    OutputChunk,
    Progress,
    RemoteError,
    TaskEvent,
    TaskRecord,
    TaskState,
    TaskSummary,
    Timeouts,
    Usage,
    check_id,
    encode,
    is_null,
    new_task_id,
)
from natsfleet.telemetry import tracing

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REJECTED, EXIT_TIMEOUT = 0, 1, 2, 3, 4

_console = console()
T = TypeVar("T")

_nats_url = click.option("--nats", "url", envvar="NATS_URL", default=None, help="NATS URL(s).")
_prefix = click.option("--prefix", envvar="NATSFLEET_PREFIX", default=None)
_json = click.option("--json", "as_json", is_flag=True, help="Print protocol structures as JSON.")
F = TypeVar("F", bound=Callable[..., object])


#: `--before SEQ`: the cursor of the next page, printed under each page.
_before = click.option(
    "--before",
    "before_seq",
    type=click.IntRange(min=1),
    default=None,
    help="The next page: the cursor printed under the previous one.",
)


def _checked_id(_: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A task or run id argument, refused (exit 2) before anything is sent
    when it is no id: a 100 KB argument is not echoed back whole."""
    if value is None:
        return None
    try:
        return check_id(value, param.name or "id")
    except InvalidValue as exc:
        raise click.BadParameter(str(exc)) from None


def _checked_run_step(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """`RUN` or `RUN/STEP` (approve names the waiting step so): each part an id."""
    run_id, slash, step = value.partition("/")
    _checked_id(ctx, param, run_id)
    if slash:
        try:
            check_id(step, "step")
        except InvalidValue as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def id_argument(name: str, *, required: bool = True, step: bool = False) -> Callable[[F], F]:
    """`@click.argument(name)` for a task or run id, checked by `_checked_id`;
    with `step`, `RUN/STEP` too."""
    return click.argument(
        name, required=required, callback=_checked_run_step if step else _checked_id
    )


def _nats(command: F) -> F:
    """`--nats URL` and `--connect-timeout S`: where the fleet is, how long to try."""
    return _nats_url(connect_timeout_option(command))


#: Priorities run highest first; 0 (the default) is the lowest a user gives.
PRIORITY_MAX = 2**31 - 1
#: Budgets and durations beyond these are typos, not plans.
BUDGET_MAX_USD = 1_000_000.0
DURATION_MAX_S = 366 * 86_400.0


class _Finite(click.FloatRange):
    """A FloatRange that also refuses nan (which compares false with every bound)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if number != number:
            self.fail(f"{value!r} is not a number.", param, ctx)
        return number


_SECONDS = _Finite(min=0, min_open=True, max=DURATION_MAX_S)


def _run(
    url: str | None, prefix: str | None, body: Callable[[FleetClient], Awaitable[int]]
) -> None:
    config = bus_config(url, prefix)

    async def main() -> int:
        return await run_connected(config, lambda bus: body(FleetClient(bus)))

    # A submit opens its task's trace when OTEL_* / NATSFLEET_TRACE_NATS say so.
    tracing.configure("natsfleet-client")
    try:
        code = asyncio.run(main())
    except RemoteError as exc:
        _console.print(f"[red]{exc.code.value}[/red]: {exc.detail}", highlight=False)
        code = EXIT_USAGE if exc.code.value in ("bad_request", "unknown_task") else EXIT_FAILED
    except InvalidValue as exc:  # an id, key or number the fleet would refuse: nothing sent
        _console.print(f"[red]error[/red]: {exc}", highlight=False)
        code = EXIT_USAGE
    except NATS_ERRORS as exc:
        code = report(exc)
    except NatsFleetError as exc:
        _console.print(f"[red]error[/red]: {exc}", highlight=False)
        code = EXIT_FAILED
    finally:
        tracing.uninstall()  # flush spans before exiting
    sys.exit(code)


def _print_json(value: Any) -> None:
    click.echo(encode(value).decode())


def _exit_for(state: TaskState) -> int:
    if state == TaskState.COMPLETED:
        return EXIT_OK
    if state in (TaskState.REJECTED, TaskState.CANCELED):
        return EXIT_REJECTED
    return EXIT_FAILED


def _load_input(text: str) -> Any:
    raw = text.encode()
    if text.startswith("@"):
        try:
            raw = Path(text[1:]).read_bytes()
        except OSError as exc:
            reason = exc.strerror or exc
            raise click.UsageError(f"--input: cannot read {text[1:]}: {reason}") from None
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise click.UsageError(f"--input is not JSON: {exc}") from None


def _print_event(event: TaskEvent, as_json: bool) -> None:
    if as_json:
        _print_json(event)
        return
    extra = event.error.detail if event.error else event.detail
    inst = f" on {event.instance_id}" if event.instance_id else ""
    _console.print(
        f"{event.task_id} [bold]{event.state.value}[/bold] attempt {event.attempt}{inst} {extra}",
        highlight=False,
    )


@click.command("submit")
@click.argument("skill", required=False)
@click.option("--workflow", default=None, help="Run this workflow instead of one skill.")
@click.option("--input", "input_text", default="{}", help="JSON, or @file.")
@click.option("--wait", is_flag=True, help="Wait for the task to end.")
@click.option("--stream", is_flag=True, help="Print partial output while waiting.")
@click.option("--key", default=None, help="Idempotency key.")
@click.option("--timeout", type=_SECONDS, default=None, help="How long to wait (s).")
@click.option("--deadline", type=_SECONDS, default=None, help="The task's schedule_to_close (s).")
@click.option("--queue", is_flag=True, help="Wait for an agent with the skill to appear.")
@click.option(
    "--priority",
    type=click.IntRange(0, PRIORITY_MAX),
    default=0,
    help="Higher runs first; 0 (the default) is the lowest.",
)
@click.option(
    "--budget",
    type=_Finite(min=0, max=BUDGET_MAX_USD),
    default=None,
    help="Budget in USD (workflows: all steps).",
)
@click.option(
    "--session", default=None, help="Continue this conversation (docs/tools.md, Sessions)."
)
@click.option(
    "--tenant", default=None, help="Who the task is for: per-tenant LLM limits (docs/llm.md)."
)
@_json
@_nats
@_prefix
def submit_command(
    skill: str | None,
    workflow: str | None,
    input_text: str,
    wait: bool,
    stream: bool,
    key: str | None,
    timeout: float | None,
    deadline: float | None,
    queue: bool,
    priority: int,
    budget: float | None,
    session: str | None,
    tenant: str | None,
    as_json: bool,
    url: str | None,
    prefix: str | None,
) -> None:
    """Submit a task to SKILL (or a run of --workflow NAME); print its id or, with --wait, its
    outcome."""
    if (skill is None) == (workflow is None):
        raise click.UsageError("give a SKILL or --workflow NAME (not both)")
    value = _load_input(input_text)

    async def body(client: FleetClient) -> int:
        # With --stream, listen for the output before the task exists: the id is
        # made here, so not even the first chunk is missed.
        task_id = new_task_id()
        printer: asyncio.Task[None] | None = None
        if stream:
            ready = asyncio.Event()
            printer = asyncio.create_task(_print_output(client, task_id, ready))
            await ready.wait()
        try:
            submitted = await client.submit(
                skill,
                value,
                workflow=workflow,
                budget_usd=budget,
                key=key,
                priority=priority,
                queue=queue,
                timeouts=Timeouts(schedule_to_close_s=deadline),
                task_id=task_id,
                session=session,
                tenant=tenant,
            )
            if not (wait or stream):
                click.echo(encode({"task_id": submitted}).decode() if as_json else submitted)
                return EXIT_OK
            if printer is not None and submitted != task_id:  # an existing key's task
                printer.cancel()
                printer = asyncio.create_task(_print_output(client, submitted, None))
            try:
                event = await asyncio.wait_for(client.wait(submitted), timeout)
            except (TimeoutError, WaitTimeout):
                message = f"[yellow]timed out[/yellow] waiting for {submitted}"
                _console.print(message, highlight=False)
                return EXIT_TIMEOUT
        except TaskRejected as exc:
            _console.print(f"[red]rejected[/red]: {exc}", highlight=False)
            return EXIT_REJECTED
        finally:
            if printer is not None:
                printer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await printer
        if stream:
            sys.stdout.write("\n")
        usage = await _usage(client, submitted) if as_json else None
        _print_outcome(event, as_json, usage)
        return _exit_for(event.state)

    _run(url, prefix, body)


async def _print_output(client: FleetClient, task_id: str, ready: asyncio.Event | None) -> None:
    attempt = 0
    async for chunk in client.output(task_id, ready):
        if not isinstance(chunk, OutputChunk):
            continue
        if attempt and chunk.attempt != attempt:
            # A reassigned task starts over: say so rather than run the texts together.
            click.echo(f"\n[attempt {chunk.attempt}]", err=True)
        attempt = chunk.attempt
        sys.stdout.write(chunk.text)
        sys.stdout.flush()


async def _usage(client: FleetClient, task_id: str) -> Usage | None:
    """The task's summed usage (calls, tokens, cost): its record has it, its events do not."""
    try:
        return (await client.status(task_id)).usage
    except NatsFleetError:
        return None  # the outcome stands without it


def _print_outcome(event: TaskEvent, as_json: bool, usage: Usage | None = None) -> None:
    if as_json:
        doc = msgspec.json.decode(encode(event))
        if usage is not None:
            # Every field, zeros included, so scripts need no defaults.
            doc["usage"] = msgspec.structs.asdict(usage)
        _print_json(doc)
    elif event.state == TaskState.COMPLETED:
        click.echo(bytes(event.output).decode())
    else:
        _print_event(event, False)


async def _print_progress(
    client: FleetClient, task_id: str, as_json: bool, ready: asyncio.Event
) -> None:
    """Each `ctx.progress` of the running task, as its agent publishes it (best effort)."""
    async for item in client.output(task_id, ready):
        if not isinstance(item, Progress):
            continue
        if as_json:
            _print_json(item)
        else:
            text = progress_text(item.fraction, item.note)
            _console.print(f"{task_id} progress {text}", highlight=False)


async def _say_if_unknown(client: FleetClient, task_id: str) -> None:
    """Tell a watcher on stderr when the supervisor knows no such task, instead of
    waiting in silence (it may still be submitted: the watch goes on)."""
    try:
        await client.status_reply(task_id)
    except RemoteError as exc:
        if exc.code == ErrorCode.UNKNOWN_TASK:
            click.echo(
                f"natsfleet: no task {task_id} is known to the supervisor;"
                " waiting for its events (Ctrl-C to stop)",
                err=True,
            )
    except NoResponders:
        # No supervisor runs: the events stream still tells the task's story,
        # and stderr stays for errors (the watch's own, e.g. NATS lost for good).
        return
    except NatsFleetError as exc:  # a supervisor that cannot answer: say so, keep watching
        click.echo(f"natsfleet: cannot ask the supervisor about {task_id}: {exc}", err=True)


@click.command("status")
@id_argument("task_id")
@_json
@_nats
@_prefix
def status_command(task_id: str, as_json: bool, url: str | None, prefix: str | None) -> None:
    """Show one task's record."""

    async def body(client: FleetClient) -> int:
        reply = await client.status_reply(task_id)
        if as_json and reply.workflow is None:
            doc = msgspec.json.decode(encode(reply.task))
            if reply.progress is not None:
                doc["progress"] = msgspec.structs.asdict(reply.progress)
            _print_json(doc)
        elif as_json:
            _print_json(reply)
        else:
            _print_record(reply.task, reply.progress)
            if reply.workflow is not None:
                print_workflow(reply.workflow, _console)
        return EXIT_OK

    _run(url, prefix, body)


def progress_text(fraction: float | None, note: str) -> str:
    """`50% reading`: what `ctx.progress(0.5, "reading")` looks like in every view."""
    return " ".join(p for p in (f"{fraction:.0%}" if fraction is not None else "", note) if p)


def _print_record(record: TaskRecord, progress: InFlight | None = None) -> None:
    table = Table(title=f"task {record.task_id}", show_header=False)
    names: tuple[str, ...] = ("state", "skill", "attempts", "instance_id", "token", "priority")
    names += ("epoch",)
    if record.workflow is not None:
        names = ("state", "workflow", "epoch")
        table.add_row("cost", f"${record.usage.cost_usd:.4f}")
    for name in names:
        table.add_row(name, str(getattr(record, name)))
    if progress is not None:
        table.add_row("progress", progress_text(progress.progress, progress.note))
    if record.error is not None:
        table.add_row("error", f"{record.error.error_type}: {record.error.detail}")
    if record.pending_call is not None:
        call = record.pending_call
        shown = escape(f"{call.tool} {call.arguments[:500]}")  # the model's text, not markup
        table.add_row("waits for", f"approval of tool {shown}")
        table.add_row("decide", f"natsfleet approve {record.task_id} [--reject --note WHY]")
    elif record.approval is not None:
        verdict = "approved" if record.approval.approved else "refused"
        table.add_row("approval", escape(f"{verdict} {record.approval.note}".strip()))
    if not is_null(record.output):
        table.add_row("output", bytes(record.output).decode()[:500])
    for attempt in record.history:
        table.add_row(
            f"attempt {attempt.attempt}",
            f"{attempt.instance_id} {attempt.outcome or 'running'}",
        )
    _console.print(table)


@click.command("tasks")
@click.option("--state", type=click.Choice([s.value for s in TaskState]), default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@_before
@_json
@_nats
@_prefix
def tasks_command(
    state: str | None,
    limit: int,
    before_seq: int | None,
    as_json: bool,
    url: str | None,
    prefix: str | None,
) -> None:
    """List tasks, one page, most recently changed first (--json: the rows)."""

    async def body(client: FleetClient) -> int:
        page = await client.list_page(TaskState(state) if state else None, limit, before_seq)
        more = f"; next page: --before {page.next_before_seq}" if page.more else ""
        footer = f"{len(page.tasks)} of {page.total} tasks{more}"
        if as_json:
            _print_json(page.tasks)  # the rows, as before; the cursor goes to stderr
            click.echo(footer, err=True)
            return EXIT_OK
        _print_tasks(page.tasks)
        _console.print(footer, highlight=False)
        return EXIT_OK

    _run(url, prefix, body)


def _print_tasks(rows: tuple[TaskSummary, ...]) -> None:
    # On a terminal too narrow for them, ids fold onto more lines, never cut.
    table = Table(
        Column("task", overflow="fold"), "skill", "state", "attempts",
        Column("instance", overflow="fold"),
    )  # fmt: skip
    for row in rows:
        table.add_row(
            row.task_id, row.skill or row.workflow or "", row.state.value, str(row.attempts),
            row.instance_id or "",
        )  # fmt: skip
    _console.print(table)


@click.command("cancel")
@id_argument("task_id")
@click.option("--reason", default="")
@_json
@_nats
@_prefix
def cancel_command(
    task_id: str, reason: str, as_json: bool, url: str | None, prefix: str | None
) -> None:
    """Cancel a queued or running task."""

    async def body(client: FleetClient) -> int:
        ack = await client.cancel(task_id, reason)
        if as_json:
            _print_json(ack)
        else:
            _console.print(f"{task_id} {ack.state.value if ack.state else ''}", highlight=False)
        return EXIT_OK

    _run(url, prefix, body)


@click.command("watch")
@id_argument("task_id", required=False)
@_json
@_nats
@_prefix
def watch_command(task_id: str | None, as_json: bool, url: str | None, prefix: str | None) -> None:
    """Print a task's events (its history first) and progress, or every task's new events."""

    async def body(client: FleetClient) -> int:
        progress = None
        if task_id is not None:
            ready = asyncio.Event()
            progress = asyncio.create_task(_print_progress(client, task_id, as_json, ready))
            await ready.wait()
            known = asyncio.create_task(_say_if_unknown(client, task_id))
            progress.add_done_callback(lambda _: known.cancel())
        try:
            async with contextlib.aclosing(client.watch(task_id)) as events:
                async for event in events:
                    _print_event(event, as_json)
                    if task_id is not None and event.state in (
                        TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELED,
                        TaskState.REJECTED,
                    ):  # fmt: skip
                        return _exit_for(event.state)
        finally:
            if progress is not None:
                progress.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await progress
        return EXIT_OK

    _run(url, prefix, body)
