"""`natsfleet gateway a2a` driven by the official a2a-sdk client, against real
gateway processes over a real fleet (docs/interop.md)."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from a2a.client import A2AClientError, Client, ClientConfig, ClientFactory
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskState,
)
from google.protobuf import json_format, struct_pb2

from tests.gateway.conftest import KEYS, Gateway, Gateways

CARD_PATH = "/.well-known/agent-card.json"


def message(skill: str | None, input: Any = None, text: str | None = None, **ids: str) -> Message:
    msg = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, **ids)
    if input is not None:
        value = struct_pb2.Value()
        json_format.ParseDict(input, value)
        msg.parts.append(Part(data=value))
    if text is not None:
        msg.parts.append(Part(text=text))
    if skill is not None:
        msg.metadata.update({"skill": skill})
    return msg


async def client_for(gateway: Gateway, key: str | None, *, streaming: bool = True) -> Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    http = httpx.AsyncClient(headers=headers, timeout=30)
    config = ClientConfig(httpx_client=http, streaming=streaming)
    return await ClientFactory(config).create_from_url(gateway.url)


async def first(stream: AsyncIterator[StreamResponse]) -> StreamResponse:
    return await anext(stream)


def result_of(task: Task) -> Any:
    [artifact] = [a for a in task.artifacts if a.artifact_id == "result"]
    return json_format.MessageToDict(artifact.parts[0].data)


async def test_card_send_stream_get_cancel_and_refusal(gateways: Gateways) -> None:
    gateway = await gateways.start("gw-a")

    # The card: open, built from the registry, with schemas and the auth it needs.
    async with httpx.AsyncClient() as http:
        card = (await http.get(gateway.url.rstrip("/") + CARD_PATH)).json()
        refused = await http.post(gateway.url, json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}})
    assert refused.status_code == 401
    skills = {s["id"]: s for s in card["skills"]}
    assert {"echo", "stream", "sleep", "fail"} <= set(skills)
    assert card["capabilities"]["streaming"] is True
    print(card)

    blocking = await client_for(gateway, KEYS["alice"], streaming=False)
    [reply] = [r async for r in blocking.send_message(SendMessageRequest(message=message("echo", {"text": "hi"})))]
    assert reply.task.status.state == TaskState.TASK_STATE_COMPLETED, reply
    assert result_of(reply.task)["text"] == "hi"
    print(reply)
