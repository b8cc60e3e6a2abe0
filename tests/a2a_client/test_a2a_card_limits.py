"""The bounds on what a remote Agent Card can make the client hold: its size
(read as it streams, from a real local HTTP server), its number of skills,
and each skill's id, description and schemas."""

import asyncio
import importlib
import json
import sys
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from natsfleet.agents.a2a import A2AAgent, CardUnavailable, ProxySettings, fetch_card, proxy_agent
from natsfleet.agents.a2a.card import (
    MAX_CARD_BYTES,
    MAX_CARD_SKILLS,
    SCHEMAS_EXTENSION,
    SKILL_DESCRIPTION_MAX_CHARS,
)

Writer = Callable[[asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def http_server(write_body: Writer) -> AsyncIterator[str]:
    """A real HTTP/1.1 server on a random port answering every request with
    `write_body` (which writes the status line, headers and body)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await write_body(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up: what the size limit does
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/"


def json_answer(body: dict[str, Any]) -> Writer:
    data = json.dumps(body).encode()

    async def write(writer: asyncio.StreamWriter) -> None:
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        )
        writer.write(head.encode() + b"Connection: close\r\n\r\n" + data)
        await writer.drain()

    return write


def card(
    url: str, skills: list[dict[str, Any]], schemas: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "remote", "description": "d", "version": "1",
        "supportedInterfaces": [
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
        ],
        "capabilities": {"streaming": True}, "defaultInputModes": ["text"],
        "defaultOutputModes": ["text"], "skills": skills,
    }  # fmt: skip
    if schemas is not None:
        extension = {"uri": SCHEMAS_EXTENSION, "params": schemas}
        body["capabilities"]["extensions"] = [extension]
    return body


async def fetch(url: str, **kwargs: Any) -> Any:
    async with httpx.AsyncClient(timeout=5) as http:
        return await fetch_card(http, url, **kwargs)


# A server in its own process, so the client's memory is measured alone: it
# streams a card without end (chunked, no Content-Length) and, once the client
# hangs up, prints how much it sent.
_ENDLESS_SERVER = """
import asyncio, sys
async def serve(reader, writer):
    sent = 0
    await reader.readuntil(b"\\r\\n\\r\\n")
    writer.write(b"HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n3\\r\\n[1,\\r\\n")
    chunk = b"%x\\r\\n%s\\r\\n" % (65536, b" " * 65536)
    try:
        while True:
            writer.write(chunk)
            await writer.drain()
            sent += 65536
    except ConnectionError:
        print("sent", sent, flush=True)
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(30)
asyncio.run(main())
"""


async def test_an_endless_card_is_refused_at_the_limit_with_bounded_memory() -> None:
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _ENDLESS_SERVER, stdout=asyncio.subprocess.PIPE
    )
    assert server.stdout is not None
    try:
        port = int(await asyncio.wait_for(server.stdout.readline(), 10))
        # Loaded before measuring: the SDK's and protobuf's modules are not the card.
        importlib.import_module("a2a.client.card_resolver")
        tracemalloc.start()
        try:
            with pytest.raises(CardUnavailable, match=f"over the limit of {MAX_CARD_BYTES} bytes"):
                await asyncio.wait_for(fetch(f"http://127.0.0.1:{port}/"), 5)
            _, peak_bytes = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        sent = await asyncio.wait_for(server.stdout.readline(), 5)
    finally:
        server.kill()
        await server.wait()
    # The card body itself (1 MiB, grown by doubling) and httpx's buffers.
    assert peak_bytes < 4 * MAX_CARD_BYTES, peak_bytes
    # It stopped reading: the server sent the limit and what socket buffers hold.
    assert int(sent.split()[1]) < 32 * MAX_CARD_BYTES, sent


async def test_a_declared_oversize_card_and_a_smaller_limit_are_refused() -> None:
    big = card("http://x/", [{"id": "s", "name": "s", "description": "x" * 5000}])
    async with http_server(json_answer(big)) as url:
        with pytest.raises(CardUnavailable, match=r"its card is \d+ bytes, over the limit of 4096"):
            await fetch(url, max_card_bytes=4096)
        assert (await fetch(url)).skills[0].id == "s"  # under the default limit


async def test_a_card_not_answered_in_time_is_refused() -> None:
    async def silent(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    async with http_server(silent) as url:
        with pytest.raises(CardUnavailable, match=r"did not arrive within 0\.2 s"):
            await fetch(url, timeout_s=0.2)


async def test_a_card_that_is_not_json_or_not_a_card_is_refused() -> None:
    async def garbage(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"[" * 5000)
        await writer.drain()

    async with http_server(garbage) as url:
        with pytest.raises(CardUnavailable, match="not a valid Agent Card"):
            await fetch(url)
    async with http_server(json_answer({"skills": 3})) as url:
        with pytest.raises(CardUnavailable, match="not a valid Agent Card"):
            await fetch(url)


async def test_a_card_with_too_many_skills_is_refused_for_tools_and_proxy() -> None:
    skills = [{"id": f"s{i}", "name": "n", "description": "d"} for i in range(MAX_CARD_SKILLS + 1)]
    async with http_server(json_answer(card("http://x/", skills))) as url:
        reason = f"lists {MAX_CARD_SKILLS + 1} skills, over the limit of {MAX_CARD_SKILLS}"
        with pytest.raises(CardUnavailable, match=reason):
            async with A2AAgent(url):
                pass
        # Exactly the limit is fine.
        del skills[MAX_CARD_SKILLS:]
    async with http_server(json_answer(card("http://x/", skills))) as url:
        assert len((await fetch(url)).skills) == MAX_CARD_SKILLS


async def test_skill_ids_schemas_and_descriptions_are_bounded() -> None:
    long_id = [{"id": "i" * 129, "name": "n", "description": "d"}]
    async with http_server(json_answer(card("http://x/", long_id))) as url:
        with pytest.raises(CardUnavailable, match="skill id of 129 characters"):
            await fetch(url)
    huge = {"s": {"input_schema": {"type": "object", "description": "x" * 70_000}}}
    one = [{"id": "s", "name": "n", "description": "d"}]
    async with http_server(json_answer(card("http://x/", one, huge))) as url:
        with pytest.raises(CardUnavailable, match=r"input_schema is 700\d\d bytes of JSON"):
            await fetch(url)
    wordy = [{"id": "s", "name": "n" * 1000, "description": "w" * 10_000}]
    async with http_server(json_answer(card("http://x/", wordy))) as url:
        async with A2AAgent(url) as remote:
            [tool] = remote.tools()
            [skill] = remote.card.skills
    assert len(skill.description) == SKILL_DESCRIPTION_MAX_CHARS and len(skill.name) == 256
    assert len(tool.spec.description) < SKILL_DESCRIPTION_MAX_CHARS + 200


async def test_integer_defaults_in_card_schemas_stay_integers() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "default": 4},
            "f": {"type": "number", "default": 0.5},
        },
    }
    one = [{"id": "s", "name": "n", "description": "d"}]
    schemas = {"s": {"version": "1", "input_schema": schema, "output_schema": schema}}
    async with http_server(json_answer(card("http://x/", one, schemas))) as url:
        async with A2AAgent(url) as remote:
            [tool] = remote.tools()
            proxy = proxy_agent(remote.card, ProxySettings(url=url))
    # Before: `"default": 4.0`, protobuf's Struct keeping every number a double.
    n = tool.spec.parameters["properties"]["n"]
    assert json.dumps(n, sort_keys=True) == '{"default": 4, "type": "integer"}'
    [spec] = proxy.skill_specs()
    assert spec.input_schema["properties"]["n"]["default"] == 4
    assert isinstance(spec.output_schema["properties"]["n"]["default"], int)
    assert spec.input_schema["properties"]["f"]["default"] == 0.5
