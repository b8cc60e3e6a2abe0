"""A standalone A2A agent written with the a2a-sdk alone (its request handler,
in-memory task store and `AgentExecutor`): the remote agent natsfleet's A2A
client is tested against (tests/agents/a2a/).

    python -m tests.a2a_remote [--key KEY]     # prints "listening on http://127.0.0.1:PORT/"

Skills (the message's metadata `skill` picks one, else the first word of its text):

- `shout`: completes with an artifact holding the text upper-cased and a data
  part `{"shout": TEXT, "data": <the message's data part or null>}`, after a
  working status saying "shouting";
- `refuse`: fails, its status message saying why;
- `linger`: works until cancelled (or 60 s); kill -9 the server meanwhile;
- `greet`: answers `hello, TEXT` as a message, with no task.

Every start and cancel is appended to the file named by `A2A_REMOTE_LOG`
(`start <skill> <task>`, `cancel <task>`), so a test sees what reached it. With
`--key`, every request but the card's needs `X-API-Key: KEY`.
"""

import argparse
import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import uvicorn
from a2a.helpers import new_task, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    APIKeySecurityScheme,
    Part,
    Role,
    SecurityScheme,
    TaskState,
)
from google.protobuf import json_format, struct_pb2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

SKILLS = {
    "shout": "Shout a text back, upper-cased.",
    "refuse": "Always refuses, with a reason.",
    "linger": "Works until it is cancelled.",
    "greet": "Answers with a message at once (no task).",
}


def _log(line: str) -> None:
    path = os.environ.get("A2A_REMOTE_LOG")
    if path:
        with Path(path).open("a") as out:
            out.write(line + "\n")


def _message_skill(context: RequestContext) -> tuple[str, str, Any]:
    message = context.message
    assert message is not None
    texts = [p.text for p in message.parts if p.WhichOneof("content") == "text"]
    data = [
        json_format.MessageToDict(p.data)
        for p in message.parts
        if p.WhichOneof("content") == "data"
    ]
    text = " ".join(texts)
    metadata = json_format.MessageToDict(message.metadata) if message.HasField("metadata") else {}
    skill = metadata.get("skill") or (text.split() or [""])[0]
    return str(skill), text, data[0] if data else None


class Executor(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None
        skill, text, data = _message_skill(context)
        if skill == "greet":  # a reply, no task: what many simple agents do
            await event_queue.enqueue_event(
                new_text_message(f"hello, {text}", context_id=context.context_id)
            )
            return
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        if context.current_task is None:  # the SDK wants the Task before its updates
            assert context.message is not None
            await event_queue.enqueue_event(
                new_task(
                    context.task_id,
                    context.context_id,
                    TaskState.TASK_STATE_SUBMITTED,
                    history=[context.message],
                )
            )
        _log(f"start {skill} {context.task_id}")
        if skill == "shout":
            await updater.start_work(self._say(updater, "shouting"))
            value = struct_pb2.Value()
            json_format.ParseDict({"shout": text.upper(), "data": data}, value)
            await updater.add_artifact(
                [Part(text=text.upper()), Part(data=value)], artifact_id="shout", name="shout"
            )
            await updater.complete()
        elif skill == "refuse":
            await updater.failed(self._say(updater, "refused: this agent never does that"))
        elif skill == "linger":
            await updater.start_work(self._say(updater, "lingering"))
            await asyncio.sleep(60)
            await updater.complete()
        else:
            await updater.reject(self._say(updater, f"no skill {skill!r}"))

    @staticmethod
    def _say(updater: TaskUpdater, text: str) -> Any:
        return new_text_message(
            text, context_id=updater.context_id, task_id=updater.task_id, role=Role.ROLE_AGENT
        )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None
        _log(f"cancel {context.task_id}")
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


class NeedsKey:
    """Every request but the card's needs `X-API-Key: <key>`."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/.well-known/"):
            if dict(scope.get("headers") or []).get(b"x-api-key") != self.key:
                await PlainTextResponse("no key", 401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def card(url: str, key: str) -> AgentCard:
    agent_card = AgentCard(
        name="Shouter",
        description="A test agent",
        version="1.2",
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(id=name, name=name, description=text, tags=["test"])
            for name, text in SKILLS.items()
        ],
    )
    if key:  # where the key goes, as clients read it from the card
        agent_card.security_schemes["apiKey"].CopyFrom(
            SecurityScheme(
                api_key_security_scheme=APIKeySecurityScheme(location="header", name="X-API-Key")
            )
        )
    return agent_card


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--key", default="")
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    agent_card = card(url, args.key)
    handler = DefaultRequestHandler(Executor(), InMemoryTaskStore(), agent_card)
    routes = create_agent_card_routes(agent_card) + create_jsonrpc_routes(handler, rpc_url="/")
    middleware = [Middleware(NeedsKey, key=args.key)] if args.key else []
    app = Starlette(routes=routes, middleware=middleware)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    print(f"listening on {url}", flush=True)
    await server.serve(sockets=[sock])


if __name__ == "__main__":
    asyncio.run(main())
