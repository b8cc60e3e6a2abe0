"""The stdio transport: an MCP server as a subprocess in its own process group.

The SDK's `stdio_client` also starts the server in a new session, but only
kills the group when the server outlives its grace period; a server that exits
at once on stdin EOF can leave its own children behind. Here the agent owns
the group: stopping closes stdin, waits `stop_grace_s`, sends SIGTERM to the
group, waits a little, and always ends with SIGKILL to the group, so nothing
the server started survives it. (A SIGKILLed agent cannot do this; its server
sees EOF on stdin, which ends MCP stdio servers by the spec.)

Messages are newline-delimited JSON-RPC, as the spec's stdio transport says.
A message longer than `max_message_bytes` (a line with no newline by then)
ends the connection: reading stops, `on_eof` is told why, and the server is
stopped like a dead one. The reader keeps the chunks of the current line and
looks for the newline in new data only, so a long line costs linear time.
"""

import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Mapping

import anyio
import anyio.abc
from mcp.client.stdio import get_default_environment
from mcp.shared.message import SessionMessage
from mcp_types import jsonrpc_message_adapter

log = logging.getLogger(__name__)

#: What the SDK's session reads and writes.
Streams = tuple[
    anyio.abc.ObjectReceiveStream[SessionMessage | Exception],
    anyio.abc.ObjectSendStream[SessionMessage],
]
# After SIGTERM to the group, how long before SIGKILL.
_TERM_WAIT_S = 1.0
_POLL_S = 0.01
# How often a running server's exit is looked for (its stdout's end usually
# says it first; this catches a child of the server holding stdout open).
_WATCH_S = 0.2


@contextlib.asynccontextmanager
async def stdio_transport(
    command: str,
    args: tuple[str, ...],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    stop_grace_s: Callable[[], float],
    max_message_bytes: int,
    on_eof: Callable[[str | None], None] | None = None,
) -> AsyncIterator[Streams]:
    """Start `command` and yield the session's (read, write) streams; stop it on exit.

    `stop_grace_s()` is asked at the stop (0 for a server found hung: killed at
    once); `on_eof(reason)` is called when the server is gone (its stdout ended
    or it exited: reason None) or was cut off (a message over `max_message_bytes`).

    Raises:
        OSError: the command cannot be started.
    """
    process = await anyio.open_process(
        [command, *args],
        env={**get_default_environment(), **env},
        stderr=sys.stderr,  # its log lines go where the agent's go
        cwd=cwd,
        start_new_session=True,  # its own process group: stopped as a whole
    )
    to_session, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, from_session = anyio.create_memory_object_stream[SessionMessage](0)

    async def read() -> None:
        assert process.stdout is not None
        reason: str | None = None
        async with to_session:
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                try:
                    async for line in _lines(process.stdout, max_message_bytes):
                        if line.strip():
                            await to_session.send(_parse(line))
                except _TooLongError:
                    reason = f"a message over {max_message_bytes} bytes"
                    log.warning("MCP server wrote %s: stopping it", reason)
        await ended(reason)  # EOF: the server died or closed stdout; or cut off

    async def watch() -> None:
        # A child the server started may hold its stdout open after it died:
        # its exit, not only EOF, ends the connection.
        while process.returncode is None:  # noqa: ASYNC110 - no event tells a child's exit
            await anyio.sleep(_WATCH_S)
        await ended(None)

    async def ended(reason: str | None) -> None:
        await to_session.aclose()  # the session sees the connection close
        if on_eof is not None:
            on_eof(reason)

    async def write() -> None:
        assert process.stdin is not None
        try:
            async with from_session:
                async for message in from_session:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await process.stdin.send((data + "\n").encode())
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            await to_session.aclose()  # a dead server: requests end now, not at their timeout

    async with anyio.create_task_group() as group:
        group.start_soon(read)
        group.start_soon(write)
        group.start_soon(watch)
        try:
            yield read_stream, write_stream
        finally:
            with anyio.CancelScope(shield=True):
                await _stop(process, stop_grace_s())
                for stream in (read_stream, write_stream):
                    await stream.aclose()
            group.cancel_scope.cancel()


class _TooLongError(Exception):
    """A line grew past the limit before its newline."""


async def _lines(stream: anyio.abc.ByteReceiveStream, max_bytes: int) -> AsyncIterator[bytes]:
    """The stream's newline-ended lines. Each chunk is searched once (never the
    line so far), so a long line costs linear time.

    Raises:
        _TooLongError: a line is longer than `max_bytes`.
    """
    parts: list[bytes] = []  # the current line's chunks, before its newline
    size = 0
    async for chunk in stream:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if size + end - start > max_bytes:
                raise _TooLongError
            parts.append(chunk[start:end])
            yield b"".join(parts)
            parts, size, start = [], 0, end + 1
        parts.append(chunk[start:])
        size += len(chunk) - start
        if size > max_bytes:
            raise _TooLongError


def _parse(line: bytes) -> SessionMessage | Exception:
    try:
        return SessionMessage(jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        log.warning("MCP server wrote a line that is not JSON-RPC: %.200r", line[:200])
        return exc


async def _stop(process: anyio.abc.Process, grace_s: float) -> None:
    """stdin closed, `grace_s` to exit, SIGTERM to the group, then SIGKILL to the
    group; with no grace (a hung server), SIGKILL at once."""
    group = process.pid  # start_new_session: the group's id is the leader's pid
    if process.stdin is not None:
        with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await process.stdin.aclose()
    if grace_s > 0 and not await _exited(process, grace_s):
        _signal_group(group, signal.SIGTERM)
        await _exited(process, _TERM_WAIT_S)
    # Always: children the server left behind are in its group too.
    _signal_group(group, signal.SIGKILL)
    if not await _exited(process, 2.0):
        log.warning("MCP server process %d survived SIGKILL", process.pid)
    with anyio.move_on_after(1.0), contextlib.suppress(OSError, anyio.BrokenResourceError):
        await process.aclose()  # its pipes and transport (else a warning at GC)


async def _exited(process: anyio.abc.Process, timeout_s: float) -> bool:
    # Not process.wait(): it also waits for the pipes, which a child that
    # inherited them keeps open.
    with anyio.move_on_after(timeout_s):
        while process.returncode is None:  # noqa: ASYNC110 - no event tells a child's exit
            await anyio.sleep(_POLL_S)
    return process.returncode is not None


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)
