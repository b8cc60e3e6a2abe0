"""natsfleet tasks seen as A2A tasks: states, parts, artifacts and the rule that
picks the skill a message targets.

The A2A task id is the natsfleet task id. The A2A context id, the message id
and the caller's name travel in the task's idempotency key
(`["a2a", caller, context_id, message_id]` as JSON), so any replica can
rebuild the A2A view of a task from the fleet alone, and a retried message
(same caller, context and message id) yields the same task.
"""

import json
from dataclasses import dataclass
from typing import Any

import msgspec
from a2a.types import (
    Artifact,
    InvalidParamsError,
    Message,
    Part,
    Role,
    Task,
    TaskState,
    TaskStatus,
)
from google.protobuf import json_format, struct_pb2

from natsfleet.protocols import ErrorInfo, TaskRecord, TaskStatusReply, integral_numbers
from natsfleet.protocols import TaskState as FleetState

#: natsfleet's states as A2A's. Queued, assigned and retrying are all "the
#: fleet has it and will run it": A2A's `submitted` before a first attempt
#: runs, `working` once one has.
STATES: dict[FleetState, TaskState] = {
    FleetState.SUBMITTED: TaskState.TASK_STATE_SUBMITTED,
    FleetState.QUEUED: TaskState.TASK_STATE_SUBMITTED,
    FleetState.ASSIGNED: TaskState.TASK_STATE_SUBMITTED,
    FleetState.WORKING: TaskState.TASK_STATE_WORKING,
    FleetState.RETRYING: TaskState.TASK_STATE_WORKING,
    FleetState.INPUT_REQUIRED: TaskState.TASK_STATE_INPUT_REQUIRED,
    FleetState.COMPLETED: TaskState.TASK_STATE_COMPLETED,
    FleetState.FAILED: TaskState.TASK_STATE_FAILED,
    FleetState.CANCELED: TaskState.TASK_STATE_CANCELED,
    FleetState.REJECTED: TaskState.TASK_STATE_REJECTED,
}

#: The artifact holding the task's streamed text (`ctx.stream`), appended chunk by chunk.
OUTPUT_ARTIFACT = "output"
#: The artifact holding the task's result (its output as JSON), sent once it completed.
RESULT_ARTIFACT = "result"
#: Longest id or caller name accepted from a client (they end up in a key of 1,024 characters).
ID_MAX_CHARS = 200


@dataclass(frozen=True, slots=True)
class Origin:
    """Who asked for a task through the gateway, in which context, with which message."""

    caller: str
    context_id: str
    message_id: str

    def key(self) -> str:
        return json.dumps(["a2a", self.caller, self.context_id, self.message_id])

    @classmethod
    def from_key(cls, key: str | None) -> "Origin | None":
        """The origin a gateway wrote into an idempotency key; None for other tasks."""
        if not key or not key.startswith('["a2a"'):
            return None
        try:
            parts = json.loads(key)
        except ValueError:
            return None
        if len(parts) != 4 or not all(isinstance(p, str) for p in parts):
            return None
        return cls(caller=parts[1], context_id=parts[2], message_id=parts[3])


@dataclass(frozen=True, slots=True)
class Target:
    """What a message asks the fleet to run."""

    skill: str | None
    workflow: str | None
    input: Any


def check_client_id(value: str, what: str) -> str:
    """A client-chosen id: 1 to 200 printable characters (InvalidParams otherwise)."""
    if not (0 < len(value) <= ID_MAX_CHARS) or not value.isprintable():
        raise InvalidParamsError(message=f"{what} must be 1 to {ID_MAX_CHARS} printable characters")
    return value


def part_value(part: Part) -> Any:
    """The JSON value of a data part."""
    return integral_numbers(json_format.MessageToDict(part.data))


def to_value(data: Any) -> struct_pb2.Value:
    value = struct_pb2.Value()
    json_format.ParseDict(data, value)
    return value


def data_part(data: Any) -> Part:
    return Part(data=to_value(data), media_type="application/json")


def text_part(text: str) -> Part:
    return Part(text=text)


def metadata_of(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message.metadata) if message.HasField("metadata") else {}


def _content(message: Message) -> tuple[list[Any], list[str]]:
    data: list[Any] = []
    texts: list[str] = []
    for part in message.parts:
        kind = part.WhichOneof("content")
        if kind == "data":
            data.append(part_value(part))
        elif kind == "text":
            texts.append(part.text)
        else:
            raise InvalidParamsError(
                message=f"a {kind or 'empty'} part is not accepted: send text or data parts"
            )
    return data, texts


def target_of(message: Message, default_skill: str | None) -> Target:
    """The skill (or workflow) a message targets, and its input.

    1. Message metadata `skill` (or `workflow`) names it; the input is the
       first data part, else `{"text": <the text parts joined>}`, else `{}`.
    2. Else a data part `{"skill": NAME, "input": {...}}` names it.
    3. Else the gateway's default skill, with the input as in 1.
    """
    data, texts = _content(message)
    metadata = metadata_of(message)
    plain: Any = data[0] if data else ({"text": "".join(texts)} if texts else {})
    for kind in ("skill", "workflow"):
        name = metadata.get(kind)
        if name is not None:
            if not isinstance(name, str) or not name:
                raise InvalidParamsError(message=f"metadata {kind!r} must be a name")
            return _target(kind, name, plain)
    for value in data:
        if isinstance(value, dict) and isinstance(value.get("skill"), str):
            return _target("skill", value["skill"], value.get("input", {}))
    if default_skill:
        return _target("skill", default_skill, plain)
    raise InvalidParamsError(
        message="name a skill: message metadata 'skill', or a data part "
        '{"skill": NAME, "input": {...}} (this gateway has no default skill)'
    )


def _target(kind: str, name: str, input: Any) -> Target:
    if kind == "workflow":
        return Target(skill=None, workflow=name, input=input)
    return Target(skill=name, workflow=None, input=input)


def agent_message(text: str, task_id: str, context_id: str, message_id: str) -> Message:
    return Message(
        message_id=message_id,
        role=Role.ROLE_AGENT,
        task_id=task_id,
        context_id=context_id,
        parts=[text_part(text)],
    )


def status_of(
    state: FleetState,
    task_id: str,
    context_id: str,
    *,
    detail: str = "",
    error: ErrorInfo | None = None,
) -> TaskStatus:
    """An A2A status; a failure or a waiting approval says why in its message."""
    status = TaskStatus(state=STATES[state])
    status.timestamp.GetCurrentTime()
    why = f"{error.error_type}: {error.detail}" if error else detail
    if why and state in (FleetState.FAILED, FleetState.REJECTED, FleetState.INPUT_REQUIRED):
        status.message.CopyFrom(agent_message(why, task_id, context_id, f"{task_id}-{state}"))
    return status


def prompt_of(reply: TaskStatusReply) -> str:
    """What a run waiting in input-required asks (its approval steps' prompts)."""
    steps = reply.workflow.steps if reply.workflow else ()
    return "; ".join(f"{s.name}: {s.detail}" for s in steps if s.phase == "input_required")


def result_artifact(output: msgspec.Raw) -> Artifact:
    return Artifact(
        artifact_id=RESULT_ARTIFACT,
        name=RESULT_ARTIFACT,
        parts=[data_part(msgspec.json.decode(output))],
    )


def output_artifact(text: str, last_seq: int) -> Artifact:
    """The streamed text so far; `metadata.seq` is the OUTPUT stream sequence it ends at."""
    artifact = Artifact(artifact_id=OUTPUT_ARTIFACT, name=OUTPUT_ARTIFACT, parts=[text_part(text)])
    artifact.metadata.update({"seq": last_seq})
    return artifact


def task_of(
    record: TaskRecord,
    origin: Origin,
    *,
    state: FleetState | None = None,
    error: ErrorInfo | None = None,
    output: msgspec.Raw | None = None,
    streamed: tuple[str, int] | None = None,
    prompt: str = "",
) -> Task:
    """The A2A task of a fleet task: its status (from `state` when a newer event
    than the record says so), the caller's message, the streamed text and the
    result once completed."""
    state = state or record.state
    task = Task(
        id=record.task_id,
        context_id=origin.context_id,
        status=status_of(
            state, record.task_id, origin.context_id, detail=prompt, error=error or record.error
        ),
    )
    user = Message(
        message_id=origin.message_id,
        role=Role.ROLE_USER,
        task_id=record.task_id,
        context_id=origin.context_id,
    )
    if record.input_ref is None:  # an input kept in BLOBS is not read back for the history
        user.parts.append(data_part(msgspec.json.decode(record.input)))
    user.metadata.update({"skill": record.skill} if record.skill else {"workflow": record.workflow})
    task.history.append(user)
    if streamed is not None and streamed[0]:
        task.artifacts.append(output_artifact(*streamed))
    final = output if output is not None else record.output
    if state == FleetState.COMPLETED and bytes(final) not in (b"", b"null"):
        task.artifacts.append(result_artifact(final))
    task.metadata.update({"natsfleet_state": str(state), "attempts": record.attempts})
    return task
