"""A local HTTP server that speaks the Anthropic Messages and OpenAI chat-completions wire.

Tests (and bench/llm_router.py) point the real SDKs at it: `base_url=server.url`
for Anthropic, `server.url + "/v1"` for OpenAI. Behaviour is scripted per
model name (the `model` field of the request body), so one server can play
several deployments; an unscripted request gets a normal answer.

Only ever listens on 127.0.0.1, on a port the OS picks.
"""

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Step:
    """What the server does for one request.

    kind: "ok" | "status" | "midstream" (some chunks, then an error inside the
    stream) | "early_error" (an error event before any chunk, status 200).
    """

    kind: str = "ok"
    text: str = ""
    tool: tuple[str, dict[str, Any]] | None = None
    # More tool calls in the same answer: (name, arguments); arguments given as
    # a str are sent as that raw text (malformed JSON on purpose).
    tools: tuple[tuple[str, dict[str, Any] | str], ...] = ()
    status: int = 200
    etype: str = ""
    code: str | None = None
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    chunks: int = 3
    usage: tuple[int, int] = (12, 7)


@dataclass
class Recorded:
    path: str
    model: str
    stream: bool
    body: dict[str, Any]
    headers: dict[str, str]
    at: float = 0.0  # wall-clock arrival (time.time()), for rate checks across processes


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_OPENAI_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 402: "Payment Required"}


class WireServer:
    def __init__(self) -> None:
        self.scripts: dict[str, deque[Step]] = {}
        self.defaults: dict[str, Step] = {}  # per model, when its script is empty
        self.requests: list[Recorded] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    # -- scripting -------------------------------------------------------
    def script(self, model: str, *steps: Step) -> None:
        self.scripts.setdefault(model, deque()).extend(steps)

    @staticmethod
    def ok(text: str = "", **kw: Any) -> Step:
        return Step(kind="ok", text=text, **kw)

    @staticmethod
    def tool_call(name: str, arguments: dict[str, Any], text: str = "") -> Step:
        return Step(kind="ok", text=text, tool=(name, arguments))

    @staticmethod
    def tool_calls(*calls: tuple[str, dict[str, Any] | str], text: str = "") -> Step:
        """One answer with several tool calls (a str argument is sent verbatim)."""
        return Step(kind="ok", text=text, tools=calls)

    @staticmethod
    def fail(
        status: int,
        *,
        etype: str = "",
        code: str | None = None,
        message: str = "",
        retry_after_ms: int | None = None,
        retry_after: str | None = None,
    ) -> Step:
        headers: dict[str, str] = {}
        if retry_after_ms is not None:
            headers["retry-after-ms"] = str(retry_after_ms)
        if retry_after is not None:
            headers["retry-after"] = retry_after
        return Step(
            kind="status", status=status, etype=etype, code=code, message=message, headers=headers
        )

    @staticmethod
    def context_length() -> Step:
        # Filled per flavour: each provider's real context-length error shape.
        return Step(kind="status", status=400, etype="context_length")

    @staticmethod
    def slow(delay_s: float, text: str = "") -> Step:
        return Step(kind="ok", text=text, delay_s=delay_s)

    @staticmethod
    def trickle(chunk_delay_s: float, words: int = 20) -> Step:
        text = " ".join(f"w{i}" for i in range(words))
        return Step(kind="ok", text=text, chunks=words, chunk_delay_s=chunk_delay_s)

    @staticmethod
    def midstream(chunks: int = 2, etype: str = "") -> Step:
        return Step(kind="midstream", chunks=chunks, etype=etype)

    @staticmethod
    def early_error(etype: str = "overloaded_error") -> Step:
        return Step(kind="early_error", etype=etype)

    def count(self, model: str) -> int:
        return sum(1 for r in self.requests if r.model == model)

    # -- lifecycle -------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> "WireServer":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- HTTP ------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # stop() cancels handlers; ending normally keeps asyncio's
            # stream callback from logging the cancellation as an error.
            pass
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        line = await reader.readline()
        if not line:
            return False
        _method, path, _ = line.decode().split(" ", 2)
        headers: dict[str, str] = {}
        while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
            key, _, value = raw.decode().partition(":")
            headers[key.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        req = json.loads(body) if body else {}
        model = str(req.get("model", ""))
        stream = bool(req.get("stream"))
        self.requests.append(Recorded(path, model, stream, req, headers, at=time.time()))
        queue = self.scripts.get(model)
        step = queue.popleft() if queue else self.defaults.get(model, Step())
        if step.delay_s:
            await asyncio.sleep(step.delay_s)
        flavour = "anthropic" if path.rstrip("/").endswith("/messages") else "openai"
        if step.kind == "status":
            await self._error(writer, flavour, step)
        elif stream:
            await self._stream(writer, flavour, model, step)
        else:
            await self._json(writer, 200, _complete(flavour, model, step))
        return True

    async def _json(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: dict[str, Any],
        extra: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(body).encode()
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
        head += ["content-type: application/json", f"content-length: {len(data)}"]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()

    async def _error(self, writer: asyncio.StreamWriter, flavour: str, step: Step) -> None:
        await self._json(writer, step.status, _error_body(flavour, step), step.headers)

    async def _stream(
        self, writer: asyncio.StreamWriter, flavour: str, model: str, step: Step
    ) -> None:
        head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        writer.write((head + "transfer-encoding: chunked\r\n\r\n").encode())
        events = (_anthropic_events if flavour == "anthropic" else _openai_events)(model, step)
        for event in events:
            if step.chunk_delay_s:
                await asyncio.sleep(step.chunk_delay_s)
            data = event.encode()
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()


def _calls(step: Step) -> list[tuple[int, str, str]]:
    """(index, name, arguments as JSON text) of every tool call of a step."""
    calls: list[tuple[str, dict[str, Any] | str]] = [step.tool] if step.tool else []
    calls += list(step.tools)
    return [
        (i, name, args if isinstance(args, str) else json.dumps(args))
        for i, (name, args) in enumerate(calls)
    ]


def _call_id(flavour: str, index: int) -> str:
    return f"toolu_{index + 1}" if flavour == "anthropic" else f"call_{index + 1}"


def _text(step: Step, model: str) -> str:
    return step.text or f"reply from {model}"


def _pieces(text: str, n: int) -> list[str]:
    words = text.split(" ")
    size = max(1, -(-len(words) // max(1, n)))
    parts = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


def _error_body(flavour: str, step: Step) -> dict[str, Any]:
    if flavour == "anthropic":
        if step.etype == "context_length":
            etype, message = (
                "invalid_request_error",
                "prompt is too long: 210000 tokens > 200000 maximum",
            )
        else:
            etype = step.etype or _ANTHROPIC_TYPES.get(step.status, "api_error")
            message = step.message or etype.replace("_", " ")
        return {
            "type": "error",
            "error": {"type": etype, "message": message},
            "request_id": "req_1",
        }
    if step.etype == "context_length":
        return {
            "error": {
                "message": "This model's maximum context length is 8192 tokens. However, your "
                "messages resulted in 9000 tokens. Please reduce the length of the messages.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        }
    etype, code = _OPENAI_TYPES.get(step.status, ("server_error", None))
    return {
        "error": {
            "message": step.message or f"error {step.status}",
            "type": step.etype or etype,
            "param": None,
            "code": step.code if step.code is not None else code,
        }
    }


def _complete(flavour: str, model: str, step: Step) -> dict[str, Any]:
    text = _text(step, model)
    inp, out = step.usage
    if flavour == "anthropic":
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        for i, name, args in _calls(step):
            # The Messages API always sends `input` as an object: malformed JSON
            # can only happen in a stream's partial_json.
            try:
                parsed = json.loads(args)
            except ValueError:
                parsed = {}
            content.append(
                {"type": "tool_use", "id": _call_id(flavour, i), "name": name, "input": parsed}
            )
        return {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": "tool_use" if _calls(step) else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": inp,
                "output_tokens": out,
                "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0,
            },
        }
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if _calls(step):
        message["tool_calls"] = [
            {
                "id": _call_id(flavour, i),
                "type": "function",
                "function": {"name": name, "arguments": args},
            }
            for i, name, args in _calls(step)
        ]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if _calls(step) else "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out},
    }


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def _anthropic_events(model: str, step: Step) -> list[str]:
    inp, out = step.usage
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": inp, "output_tokens": 1},
    }
    events = [_sse("message_start", {"type": "message_start", "message": message})]
    error = {
        "type": "error",
        "error": {"type": step.etype or "overloaded_error", "message": "Overloaded"},
    }
    if step.kind == "early_error":
        return [*events, _sse("error", error)]
    events.append(
        _sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
    )
    events.append(_sse("ping", {"type": "ping"}))
    pieces = _pieces(_text(step, model), step.chunks)
    for i, piece in enumerate(pieces):
        if step.kind == "midstream" and i == step.chunks:
            break
        delta = {"type": "text_delta", "text": piece}
        events.append(
            _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        )
    if step.kind == "midstream":
        return [*events, _sse("error", error)]
    events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
    for i, name, args in _calls(step):
        block_index = i + 1
        block = {"type": "tool_use", "id": _call_id("anthropic", i), "name": name, "input": {}}
        events.append(
            _sse(
                "content_block_start",
                {"type": "content_block_start", "index": block_index, "content_block": block},
            )
        )
        for part in (args[: len(args) // 2], args[len(args) // 2 :]):
            delta = {"type": "input_json_delta", "partial_json": part}
            events.append(
                _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": block_index, "delta": delta},
                )
            )
        events.append(
            _sse("content_block_stop", {"type": "content_block_stop", "index": block_index})
        )
    stop = "tool_use" if _calls(step) else "end_turn"
    events.append(
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": out},
            },
        )
    )
    events.append(_sse("message_stop", {"type": "message_stop"}))
    return events


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> str:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }
    return f"data: {json.dumps(body)}\n\n"


def _openai_events(model: str, step: Step) -> list[str]:
    inp, out = step.usage
    error = {
        "error": {
            "message": "The server had an error while processing your request.",
            "type": step.etype or "server_error",
            "param": None,
            "code": None,
        }
    }
    if step.kind == "early_error":
        return [f"data: {json.dumps(error)}\n\n"]
    events = [_chunk(model, {"role": "assistant", "content": ""})]
    for i, piece in enumerate(_pieces(_text(step, model), step.chunks)):
        if step.kind == "midstream" and i == step.chunks:
            break
        events.append(_chunk(model, {"content": piece}))
    if step.kind == "midstream":
        return [*events, f"data: {json.dumps(error)}\n\n"]
    for i, name, args in _calls(step):
        first = {
            "index": i,
            "id": _call_id("openai", i),
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        events.append(_chunk(model, {"tool_calls": [first]}))
        for part in (args[: len(args) // 2], args[len(args) // 2 :]):
            events.append(
                _chunk(model, {"tool_calls": [{"index": i, "function": {"arguments": part}}]})
            )
    events.append(_chunk(model, {}, "tool_calls" if _calls(step) else "stop"))
    usage = {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out}
    tail = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [],
        "usage": usage,
    }
    events.append(f"data: {json.dumps(tail)}\n\n")
    events.append("data: [DONE]\n\n")
    return events
