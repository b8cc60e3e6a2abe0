"""One MCP server's connection for the life of the agent process.

Started on first use; one task (the runner) owns the SDK client's context
(anyio wants it entered and left in one task), other tasks call through it.
What goes wrong, and what happens then:

- the server cannot be started or reached, or does not finish the handshake
  within `connect_timeout_s`: `MCPServerUnavailableError` (an error result);
- the server dies (a stdio server's stdout ends, an HTTP request fails): the
  call in flight is an `MCPServerUnavailableError`; the next call starts
  (stdio) or connects (HTTP) it again;
- a stdio server writes a message over `max_message_bytes`: reading stops,
  it is killed at once, the call in flight is an `MCPMessageTooLargeError`
  and the next call starts it again;
- a call outlives its timeout (the loop cancels it): the runner asks the
  server for its tools (protocol 2026-07-28 has no ping); no answer within
  `connect_timeout_s` or `call_timeout_s` (the shorter) means it hangs: it is
  stopped at once, to be started again by the next call;
- failures in a row make the next try wait (`backoff_initial_s`, doubling to
  `backoff_max_s`); a call that waits more than `_MAX_WAIT_S` for it fails at
  once instead, saying when the next try is. An answer resets the backoff.

This module imports the `mcp` SDK: it is loaded only by an agent that uses MCP.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from natsfleet.agents.mcp.config import AnyServer, HttpServer, StdioServer, expand
from natsfleet.agents.mcp.errors import (
    MCPMessageTooLargeError,
    MCPServerUnavailableError,
    MCPToolError,
)
from natsfleet.agents.mcp.stdio import stdio_transport

log = logging.getLogger(__name__)

# A call never sleeps longer than this for the backoff: it fails at once instead.
_MAX_WAIT_S = 1.0
# tools/list pages followed at most (a server paging forever is cut off).
_MAX_PAGES = 50
# How long a cancelled runner may take to SIGKILL and reap its server (stdio.py).
_KILL_WAIT_S = 4.0


class MCPConnection:
    """The process's connection to one MCP server (see module docstring)."""

    def __init__(self, config: AnyServer) -> None:
        self.config = config
        self.name = config.name
        self._client: Client | None = None
        self._runner: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._probe = False
        self._lock = asyncio.Lock()
        self._failures = 0
        self._retry_at = 0.0
        # Each start is a generation; its failure counts once however it shows.
        self._generation = 0
        self._failed_generation = -1
        self._tools: tuple[types.Tool, ...] | None = None
        self._closed = False
        self._hung = False  # found hung: stopped without a grace period
        self._oversize_generation = -1  # the generation cut off for a too long message
        self._ready: asyncio.Future[Client] | None = None
        #: Times the server was started (stdio) or connected (HTTP).
        self.starts = 0

    # -- calls ----------------------------------------------------------------------

    async def list_tools(self) -> tuple[types.Tool, ...]:
        """The server's tools (listed once per connection, again after a
        `tools/list_changed` notification)."""
        client = await self._connected()
        generation = self._generation
        if self._tools is not None:
            return self._tools
        tools: list[types.Tool] = []
        cursor: str | None = None
        try:
            async with asyncio.timeout(self.config.connect_timeout_s):
                for _ in range(_MAX_PAGES):
                    page = await client.list_tools(cursor=cursor, cache_mode="bypass")
                    tools += page.tools
                    cursor = page.next_cursor
                    if cursor is None:
                        break
        except Exception as exc:
            error = await self._broken(f"tools/list failed: {_why(exc)}", generation)
            raise self._oversize(generation) or error from None
        self._tools = tuple(tools)
        return self._tools

    async def call(self, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        """One `tools/call`. No timeout of its own: the caller's bounds it (the loop's
        `timeout_s`), and a call cut by it makes the runner check the server.

        Raises:
            MCPServerUnavailableError: no server, or it died during the call.
            MCPToolError: the server refused the call (a JSON-RPC error).
        """
        client = await self._connected()
        generation = self._generation
        try:
            result = await client.call_tool(tool, arguments)
        except asyncio.CancelledError:
            self._request_probe()
            raise
        except MCPError as exc:
            if exc.code == types.CONNECTION_CLOSED:
                error = await self._broken(f"the connection closed during {tool}", generation)
                raise self._oversize(generation) or error from None
            if exc.code == types.REQUEST_TIMEOUT:
                self._request_probe()
            raise MCPToolError(self.name, tool, f"{exc.message} (JSON-RPC {exc.code})") from None
        except Exception as exc:
            error = await self._broken(f"{tool} failed: {_why(exc)}", generation)
            raise self._oversize(generation) or error from None
        self._failures = 0
        return result

    def _oversize(self, generation: int) -> MCPMessageTooLargeError | None:
        if self._oversize_generation != generation:
            return None
        return MCPMessageTooLargeError(self.name, self.config.max_message_bytes)

    # -- the connection ----------------------------------------------------------------

    def _live(self) -> Client | None:
        # A method, not the attribute: other tasks change it across awaits.
        return self._client

    async def _connected(self) -> Client:
        client = self._live()
        if client is not None:
            return client
        async with self._lock:
            client = self._live()
            if client is not None:
                return client
            if self._closed:
                raise MCPServerUnavailableError(self.name, "the agent is stopping")
            wait_s = self._retry_at - asyncio.get_running_loop().time()
            if wait_s > _MAX_WAIT_S:
                raise MCPServerUnavailableError(
                    self.name, f"{self._failures} failures in a row; next try in {wait_s:.1f} s"
                )
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            await self._start()
            client = self._live()
            if client is None:  # it died between its start and here
                raise MCPServerUnavailableError(self.name, "it stopped right after starting")
            return client

    async def _start(self) -> None:
        await self._stop_runner()  # what is left of the last connection
        ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        self._stopping = self._probe = self._hung = False
        self._wake = asyncio.Event()
        self._tools = None
        self.starts += 1
        self._generation += 1
        self._ready = ready
        self._runner = asyncio.create_task(self._run(ready), name=f"mcp {self.name}")
        try:
            async with asyncio.timeout(self.config.connect_timeout_s):
                self._client = await asyncio.shield(ready)
        except asyncio.CancelledError:
            await self._stop_runner()
            raise
        except Exception as exc:
            what = "start" if isinstance(self.config, StdioServer) else "connect"
            if isinstance(exc, TimeoutError) and not ready.done():
                detail = f"did not {what} within {self.config.connect_timeout_s} s"
            else:
                detail = f"cannot {what}: {_why(exc)}"
            raise await self._broken(detail) from None
        log.info("MCP server %s ready (%s)", self.name, self._describe())

    async def _run(self, ready: "asyncio.Future[Client]") -> None:
        """Owns the client's context: open, serve until stopped or found hung, close."""
        try:
            async with self._open() as client:
                ready.set_result(client)
                while not self._stopping:
                    await self._wake.wait()
                    self._wake.clear()
                    if self._probe and not self._stopping:
                        self._probe = False
                        if not await self._answers(client):
                            self._hung = True
                            log.warning(
                                "MCP server %s does not answer tools/list: stopping it", self.name
                            )
                            self._client = None
                            self._note_failure()
                            break
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                log.warning("MCP server %s connection ended: %s", self.name, _why(exc))
        finally:
            if not ready.done():
                ready.cancel()
            if ready.done() and not ready.cancelled() and ready.exception() is None:
                if self._client is ready.result():
                    self._client = None

    async def _answers(self, client: Client) -> bool:
        # tools/list, not ping: protocol 2026-07-28 removed ping, every server lists.
        # A server that cannot list within a call's time is as good as hung.
        timeout_s = min(self.config.connect_timeout_s, self.config.call_timeout_s)
        try:
            async with asyncio.timeout(timeout_s):
                await client.list_tools(cache_mode="bypass")
        except Exception:
            return False
        return True

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[Client]:
        config = self.config
        if isinstance(config, StdioServer):
            pipes = stdio_transport(
                config.command,
                config.args,
                env={k: expand(config.name, v) for k, v in config.env.items()},
                cwd=config.cwd,
                stop_grace_s=lambda: 0.0 if self._hung else config.stop_grace_s,
                max_message_bytes=config.max_message_bytes,
                on_eof=self._on_eof,
            )
            async with Client(
                cast(Any, pipes), cache=None, message_handler=self._on_message
            ) as client:
                yield client
            return
        assert isinstance(config, HttpServer)
        headers = {k: expand(config.name, v) for k, v in config.headers.items()}
        # Uncompressed only: a compressed body cannot be bounded before it
        # expands (`_body_cap` refuses one a server sends anyway).
        headers = {k: v for k, v in headers.items() if k.lower() != "accept-encoding"}
        headers["Accept-Encoding"] = "identity"
        timeout = httpx2.Timeout(config.connect_timeout_s, read=max(300.0, config.call_timeout_s))
        cap = _body_cap(config.max_message_bytes)
        async with httpx2.AsyncClient(
            headers=headers, timeout=timeout, event_hooks={"response": [cap]}
        ) as http:
            transport = streamable_http_client(
                config.url, http_client=http, max_sse_event_size=config.max_message_bytes
            )
            async with Client(
                cast(Any, transport), cache=None, message_handler=self._on_message
            ) as client:
                yield client

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self._tools = None  # listed again on the next `tools()`
        elif isinstance(message, Exception):
            log.debug("MCP server %s transport: %s", self.name, _why(message))

    def _on_eof(self, reason: str | None) -> None:
        """The stdio server's stdout ended, or it was cut off for a too long
        message (`reason`): it is gone; the next call starts it again."""
        if reason is not None:
            self._hung = True  # no grace: it may still be writing
            self._oversize_generation = self._generation
        if self._client is not None and not self._stopping:
            log.warning("MCP server %s exited; it is started again on the next call", self.name)
            self._client = None
            self._note_failure()
            self._stopping = True
            self._wake.set()

    def _request_probe(self) -> None:
        if self._client is not None:
            self._probe = True
            self._wake.set()

    def _note_failure(self) -> None:
        if self._failed_generation == self._generation:
            return
        self._failed_generation = self._generation
        self._failures += 1
        delay_s = min(
            self.config.backoff_max_s, self.config.backoff_initial_s * 2 ** (self._failures - 1)
        )
        self._retry_at = asyncio.get_running_loop().time() + delay_s

    async def _broken(
        self, detail: str, generation: int | None = None
    ) -> MCPServerUnavailableError:
        """Stop what is left of the connection the failure happened on (not a
        newer one another call started meanwhile); the error to raise."""
        if generation is None or generation == self._generation:
            self._note_failure()
            await self._stop_runner()
        log.warning("MCP server %s: %s", self.name, detail)
        return MCPServerUnavailableError(self.name, detail)

    async def _stop_runner(self) -> None:
        runner, self._runner = self._runner, None
        self._client = None
        if runner is None:
            return
        self._stopping = True
        self._wake.set()
        ready = self._ready
        if ready is None or not ready.done() or ready.cancelled() or ready.exception():
            # It never finished the handshake (or is still at it): nothing to
            # close gracefully; killed now, so the failure shows at
            # connect_timeout_s, not a grace period later.
            self._hung = True
            runner.cancel()
        else:
            grace_s = self.config.stop_grace_s if isinstance(self.config, StdioServer) else 0.0
            done, _ = await asyncio.wait({runner}, timeout=grace_s + 5.0)
            if not done:
                self._hung = True
                runner.cancel()
        # The transport's stop is shielded: SIGKILL to the group, then its reap.
        await asyncio.wait({runner}, timeout=_KILL_WAIT_S)

    async def aclose(self) -> None:
        """Close the session and stop the server (idempotent); later calls fail."""
        self._closed = True
        async with self._lock:
            await self._stop_runner()

    def _describe(self) -> str:
        config = self.config
        if isinstance(config, StdioServer):
            return f"stdio: {config.command}"
        return f"http: {config.url}"


class _BodyTooLargeError(httpx2.StreamError):
    """An HTTP server's JSON body is longer than the server's `max_message_bytes`
    (a StreamError: the SDK makes it the request's JSON-RPC error)."""


def _body_cap(max_bytes: int) -> Any:
    """A response hook bounding a JSON body (the SDK reads it whole with
    `aread()`); an SSE stream is bounded per event by the SDK itself."""

    async def cap(response: httpx2.Response) -> None:
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            # Asked for identity (see the client's headers): a compressed body
            # is counted before it expands, ~1000x for gzip, so no bound on the
            # bytes read bounds the memory. Refused whole, SSE included.
            response.stream = _RefusedStream(
                f"a compressed response (Content-Encoding: {encoding[:40]}), "
                "though the client asked for identity: its size cannot be bounded"
            )
            return
        if response.headers.get("content-type", "").lower().startswith("text/event-stream"):
            return
        response.stream = _CappedStream(response.stream, max_bytes)

    return cap


class _CappedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: Any, max_bytes: int) -> None:
        self._inner = inner
        self._max_bytes = max_bytes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        total = 0
        async for chunk in self._inner:
            total += len(chunk)
            if total > self._max_bytes:
                raise _BodyTooLargeError(f"a response over {self._max_bytes} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _RefusedStream(httpx2.AsyncByteStream):
    def __init__(self, reason: str) -> None:
        self._reason = reason

    async def __aiter__(self) -> AsyncIterator[bytes]:
        # An async generator (the stream's interface) that fails at its first step.
        for _ in range(1):
            raise _BodyTooLargeError(self._reason)
        yield b""


def _why(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _why(exc.exceptions[0])
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500] if str(exc) else text
