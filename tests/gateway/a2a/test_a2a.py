"""`natsfleet gateway a2a` driven by the official a2a-sdk client, against real
gateway processes over a real fleet (docs/interop.md, "Calling the fleet from
an A2A client" and "Gateways as replicas")."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from a2a.client import A2AClientError, Client, ClientConfig, ClientFactory
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    InvalidParamsError,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskNotFoundError,
    TaskState,
)
from google.protobuf import json_format, struct_pb2

from tests.gateway.a2a.conftest import KEYS, Gateway, Gateways

CARD_PATH = "/.well-known/agent-card.json"
EXPECTED = "".join(f"t{i} " for i in range(40))


def message(skill: str | None, input: Any = None, text: str | None = None) -> Message:
    msg = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER)
    if input is not None:
        value = struct_pb2.Value()
        json_format.ParseDict(input, value)
        msg.parts.append(Part(data=value))
    if text is not None:
        msg.parts.append(Part(text=text))
    if skill is not None:
        msg.metadata.update({"skill": skill})
    return msg


@contextlib.asynccontextmanager
async def client_for(
    gateway: Gateway, key: str | None = KEYS["alice"], *, streaming: bool = True
) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        config = ClientConfig(httpx_client=http, streaming=streaming)
        client = await ClientFactory(config).create_from_url(gateway.url)
        try:
            yield client
        finally:
            await client.close()


def result_of(task: Task) -> Any:
    [artifact] = [a for a in task.artifacts if a.artifact_id == "result"]
    return json_format.MessageToDict(artifact.parts[0].data)


class Seen:
    """What a client saw of a stream: the output text as A2A builds it up."""

    def __init__(self) -> None:
        self.text = ""
        self.seqs: list[int] = []
        self.states: list[int] = []
        self.task: Task | None = None
        self.result: Any = None

    def add(self, event: StreamResponse) -> None:
        kind = event.WhichOneof("payload")
        if kind == "task":
            self.task = event.task
            self.states.append(event.task.status.state)
            for artifact in event.task.artifacts:  # a snapshot: the text so far
                if artifact.artifact_id == "output":
                    self.text = artifact.parts[0].text
        elif kind == "status_update":
            self.states.append(event.status_update.status.state)
        elif kind == "artifact_update":
            artifact = event.artifact_update.artifact
            if artifact.artifact_id == "output":
                self.text = (self.text if event.artifact_update.append else "") + artifact.parts[
                    0
                ].text
                self.seqs.append(int(event.artifact_update.metadata["seq"]))
            else:
                self.result = json_format.MessageToDict(artifact.parts[0].data)


async def read(stream: AsyncIterator[StreamResponse], seen: Seen, until_chunks: int = 0) -> None:
    """Read into `seen` until the stream ends (or `until_chunks` output items came)."""
    async for event in stream:
        seen.add(event)
        if until_chunks and len(seen.seqs) >= until_chunks:
            return


async def test_the_a2a_gateway_and_its_replicas(gateways: Gateways) -> None:
    # One fleet and two replicas for every scenario: processes are what costs.
    a, b = await gateways.up("gw-a", "gw-b")
    await card_send_stream_get_cancel_and_refusal(a)
    await one_task_through_two_replicas(a, b)
    await a_replica_killed_mid_stream_loses_nothing(a, b)
    # SIGTERM: a clean exit.
    b.process.terminate()
    assert await b.process.wait(15) == 0


async def card_send_stream_get_cancel_and_refusal(gateway: Gateway) -> None:

    # The card: open, built from the registry, with input schemas and the auth it needs.
    async with httpx.AsyncClient() as http:
        card = (await http.get(gateway.url.rstrip("/") + CARD_PATH)).json()
        get = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}}
        no_key = await http.post(gateway.url, json=get)
        wrong_key = await http.post(gateway.url, json=get, headers={"X-API-Key": "w" * 20})
        auth = {"Authorization": f"Bearer {KEYS['alice']}"}
        too_large = await http.post(gateway.url, content=b"x" * 9_000_000, headers=auth)

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted
            for _ in range(9):
                yield b"x" * 1_000_000

        chunked = await http.post(gateway.url, content=chunks(), headers=auth)
    assert (no_key.status_code, wrong_key.status_code) == (401, 401)
    assert too_large.status_code == 413
    assert chunked.status_code == 413 and chunked.json() == too_large.json(), chunked.text
    assert {"echo", "stream", "sleep", "fail"} <= {s["id"] for s in card["skills"]}
    [schemas] = card["capabilities"]["extensions"]
    assert schemas["params"]["echo"]["input_schema"]["$defs"]["Text"]["required"] == ["text"]
    assert card["capabilities"]["streaming"] is True
    assert set(card["securitySchemes"]) == {"bearer", "apiKey"}
    # The SDK client without a key is refused too.
    async with client_for(gateway, None) as anonymous:
        with pytest.raises(A2AClientError):
            await anonymous.get_task(GetTaskRequest(id="01ABC"))

    # Blocking send: the completed task with its result.
    async with client_for(gateway, streaming=False) as blocking:
        request = SendMessageRequest(message=message("echo", {"text": "hi"}))
        [reply] = [r async for r in blocking.send_message(request)]
        # The same message again (a client's retry): the same task, not a second.
        [again] = [r async for r in blocking.send_message(request)]
    assert reply.task.status.state == TaskState.TASK_STATE_COMPLETED
    assert result_of(reply.task)["text"] == "hi"
    assert again.task.id == reply.task.id and result_of(again.task) == result_of(reply.task)

    async with client_for(gateway) as alice, client_for(gateway, KEYS["bob"]) as bob:
        # Streaming: the task, its output chunk by chunk, the result, completed.
        seen = Seen()
        request = SendMessageRequest(message=message("stream", {"chunks": 40, "gap_ms": 0}))
        await asyncio.wait_for(read(alice.send_message(request), seen), 20)
        assert seen.text == EXPECTED and seen.result == {"text": EXPECTED}
        assert seen.states[0] == TaskState.TASK_STATE_SUBMITTED
        assert seen.states[-1] == TaskState.TASK_STATE_COMPLETED
        assert seen.task is not None
        task_id = seen.task.id

        got = await alice.get_task(GetTaskRequest(id=task_id))
        assert got.status.state == TaskState.TASK_STATE_COMPLETED
        assert result_of(got) == {"text": EXPECTED}
        assert got.context_id == seen.task.context_id
        # Another caller's task is not there for bob.
        with pytest.raises(TaskNotFoundError):
            await bob.get_task(GetTaskRequest(id=task_id))

        # A bad task id, a skill nobody offers: clear answers.
        with pytest.raises(InvalidParamsError, match="task id"):
            await alice.get_task(GetTaskRequest(id="../x"))
        unknown = SendMessageRequest(message=message("nope", {}))
        outcome = Seen()
        await asyncio.wait_for(read(alice.send_message(unknown), outcome), 20)
        assert outcome.states[-1] == TaskState.TASK_STATE_REJECTED

        # A text message with no skill and no default skill: a clear error.
        with pytest.raises(InvalidParamsError, match="name a skill"):
            await anext(alice.send_message(SendMessageRequest(message=message(None, text="hi"))))

        # A workflow waiting for an approval is input-required; a message answers it.
        gate = message(None, {"x": 1})
        gate.metadata.update({"workflow": "gate"})
        seen = Seen()
        await asyncio.wait_for(read(alice.send_message(SendMessageRequest(message=gate)), seen), 20)
        assert seen.states[-1] == TaskState.TASK_STATE_INPUT_REQUIRED
        assert seen.task is not None
        waiting = await alice.get_task(GetTaskRequest(id=seen.task.id))
        assert waiting.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        assert waiting.status.message.parts[0].text == "ask: Echo it?"
        answer = message(None, {"text": "approved via A2A"})
        answer.task_id = seen.task.id
        answered = Seen()
        stream = alice.send_message(SendMessageRequest(message=answer))
        await asyncio.wait_for(read(stream, answered), 20)
        assert answered.states[-1] == TaskState.TASK_STATE_COMPLETED
        assert answered.result == {"text": "approved via A2A"}

        # Cancel a running task.
        request = SendMessageRequest(
            message=message("sleep", {"ms": 20_000, "steps": 2}),
            configuration=SendMessageConfiguration(return_immediately=True),
        )
        stream = alice.send_message(request)
        started = await anext(stream)
        await stream.aclose()
        canceled = await alice.cancel_task(CancelTaskRequest(id=started.task.id))
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED


async def one_task_through_two_replicas(a: Gateway, b: Gateway) -> None:
    async with client_for(a) as via_a, client_for(b) as via_b:
        # Started on A: streamed there, read and resubscribed on B, canceled on B.
        request = SendMessageRequest(message=message("sleep", {"ms": 20_000, "steps": 40}))
        on_a = via_a.send_message(request)
        task_id = (await anext(on_a)).task.id
        async for event in on_a:  # until it runs (progress comes as working updates)
            if event.status_update.status.state == TaskState.TASK_STATE_WORKING:
                break
        got = await via_b.get_task(GetTaskRequest(id=task_id))
        assert got.status.state == TaskState.TASK_STATE_WORKING
        on_b = via_b.subscribe(SubscribeToTaskRequest(id=task_id))
        snapshot = await anext(on_b)
        assert snapshot.task.id == task_id
        assert snapshot.task.status.state == TaskState.TASK_STATE_WORKING

        canceled = await via_b.cancel_task(CancelTaskRequest(id=task_id))
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED

        async def last_state(stream: AsyncIterator[StreamResponse]) -> int:
            state = 0
            async for event in stream:
                if event.HasField("status_update"):
                    state = event.status_update.status.state
            return state

        ends = await asyncio.wait_for(asyncio.gather(last_state(on_a), last_state(on_b)), 15)
        assert ends == [TaskState.TASK_STATE_CANCELED] * 2


async def a_replica_killed_mid_stream_loses_nothing(a: Gateway, b: Gateway) -> None:
    async with client_for(a) as via_a, client_for(b) as via_b:
        # Streaming on A, A killed (-9) mid-stream, resubscribed on B: the
        # snapshot holds all the text so far, then each later chunk once, then
        # the result.
        seen = Seen()
        request = SendMessageRequest(message=message("stream", {"chunks": 40, "gap_ms": 50}))
        on_a = via_a.send_message(request)
        await asyncio.wait_for(read(on_a, seen, until_chunks=5), 20)
        assert seen.task is not None
        task_id = seen.task.id
        before = seen.text
        await a.process.kill()
        with pytest.raises(Exception):  # noqa: B017 - whatever the transport says
            await asyncio.wait_for(read(on_a, seen), 10)

        resumed = Seen()
        stream = via_b.subscribe(SubscribeToTaskRequest(id=task_id))
        await asyncio.wait_for(read(stream, resumed), 20)
        assert resumed.text.startswith(before)
        assert resumed.text == EXPECTED
        assert resumed.seqs == sorted(set(resumed.seqs))
        assert resumed.result == {"text": EXPECTED}
        assert resumed.states[-1] == TaskState.TASK_STATE_COMPLETED
