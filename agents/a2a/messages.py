"""What goes to a remote agent and what comes back: the message built from a
skill's arguments, and a remote task's events folded into its result.

A skill with a schema (card extension) gets its arguments as one data part; a
skill without gets `text` as a text part and `data`, if given, as a data part.
The message's metadata names the skill (`{"skill": ID}`), which natsfleet's
gateway routes by and other agents may ignore. The result of a completed task is
its artifacts: their text parts joined, and their data parts (`A2AResult`).
"""

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from natsfleet.agents.a2a.card import RemoteSkill
from natsfleet.protocols import integral_numbers

if TYPE_CHECKING:
    from a2a.types import Message, Part, StreamResponse, Task, TaskStatus


class A2AResult(msgspec.Struct, frozen=True, kw_only=True):
    """A completed remote task's artifacts.

    Attributes:
        task_id: The remote task's id.
        text: Every text part of its artifacts, joined in order.
        data: Its one data part's value, the list of them if several, else None.
    """

    task_id: str
    text: str = ""
    data: Any = None


#: Remote task states as the names this client reports (A2A's, lower-case).
STATE_NAMES = {
    0: "unspecified",
    1: "submitted",
    2: "working",
    3: "completed",
    4: "failed",
    5: "canceled",
    6: "input-required",
    7: "rejected",
    8: "auth-required",
}
COMPLETED = 3
#: States after which the task will not move without this client: done, or
#: waiting for input or authentication it cannot give.
FINAL = frozenset({3, 4, 5, 6, 7, 8})


def _data_part(value: Any) -> "Part":
    from a2a.types import Part
    from google.protobuf import json_format, struct_pb2

    proto = struct_pb2.Value()
    json_format.ParseDict(value, proto)
    return Part(data=proto, media_type="application/json")


def build_message(skill: RemoteSkill, arguments: dict[str, Any]) -> "Message":
    """The user message asking `skill` for `arguments` (already checked)."""
    from a2a.types import Message, Part, Role

    message = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER)
    if skill.input_schema is not None:
        message.parts.append(_data_part(arguments))
    else:
        text = arguments.get("text")
        if isinstance(text, str) and text:
            message.parts.append(Part(text=text))
        if arguments.get("data") is not None:
            message.parts.append(_data_part(arguments["data"]))
        if not message.parts:  # A2A refuses a message with no parts
            message.parts.append(Part(text=""))
    message.metadata.update({"skill": skill.id})
    return message


def text_of(status: "TaskStatus") -> str:
    """The text of a status's message (why it failed, what it is doing)."""
    if not status.HasField("message"):
        return ""
    parts = status.message.parts
    return " ".join(p.text for p in parts if p.WhichOneof("content") == "text")


@dataclass
class ArtifactPiece:
    texts: list[str] = field(default_factory=list)
    data: list[Any] = field(default_factory=list)


@dataclass
class TaskView:
    """A remote task as its events built it up: id, state, status text, artifacts."""

    task_id: str = ""
    state: int = 0
    reason: str = ""
    artifacts: dict[str, ArtifactPiece] = field(default_factory=dict)
    #: The agent answered with a message and no task: that message is the result.
    reply: ArtifactPiece | None = None

    @property
    def final(self) -> bool:
        return self.reply is not None or self.state in FINAL

    @property
    def state_name(self) -> str:
        return STATE_NAMES.get(self.state, str(self.state))

    #: Characters of result held so far (text, and data as JSON): a remote
    #: agent must not fill this process's memory (`RemoteAgent.max_result_chars`).
    size: int = 0

    def _add_parts(self, piece: ArtifactPiece, parts: Any) -> str:
        from google.protobuf import json_format

        new_text = []
        for part in parts:
            kind = part.WhichOneof("content")
            if kind == "text":
                piece.texts.append(part.text)
                new_text.append(part.text)
                self.size += len(part.text)
            elif kind == "data":
                value = integral_numbers(json_format.MessageToDict(part.data))
                piece.data.append(value)
                self.size += len(msgspec.json.encode(value))
        return "".join(new_text)

    def take_task(self, task: "Task") -> None:
        """A snapshot of the whole task (replaces what was seen)."""
        self.task_id = task.id or self.task_id
        self.state = task.status.state
        self.reason = text_of(task.status) or self.reason
        self.artifacts = {}
        self.size = 0
        for artifact in task.artifacts:
            self._add_parts(
                self.artifacts.setdefault(artifact.artifact_id, ArtifactPiece()), artifact.parts
            )

    def take(self, event: "StreamResponse") -> tuple[str, str]:
        """Fold one event in; `(status note, new artifact text)` it brought."""
        kind = event.WhichOneof("payload")
        if kind == "task":
            self.take_task(event.task)
            return text_of(event.task.status), ""
        if kind == "status_update":
            update = event.status_update
            self.task_id = update.task_id or self.task_id
            self.state = update.status.state
            note = text_of(update.status)
            self.reason = note or self.reason
            return note, ""
        if kind == "artifact_update":
            update = event.artifact_update
            self.task_id = update.task_id or self.task_id
            artifact = update.artifact
            if not update.append:
                self.artifacts.pop(artifact.artifact_id, None)
            piece = self.artifacts.setdefault(artifact.artifact_id, ArtifactPiece())
            return "", self._add_parts(piece, artifact.parts)
        if kind == "message":
            self.reply = ArtifactPiece()
            return "", self._add_parts(self.reply, event.message.parts)
        return "", ""

    def result(self) -> A2AResult:
        pieces = [self.reply] if self.reply is not None else list(self.artifacts.values())
        texts = [t for p in pieces for t in p.texts]
        data = [d for p in pieces for d in p.data]
        value = data[0] if len(data) == 1 else (data or None)
        return A2AResult(task_id=self.task_id, text="".join(texts), data=value)
