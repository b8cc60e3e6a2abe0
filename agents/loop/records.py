"""What the journal holds: one Struct per kind of entry (docs/tools.md, "The journal").

Keys (KV bucket JOURNAL, one subject token per part):

| key | record |
|---|---|
| `<task>.claim` | `Claim`: which attempt owns the journal now |
| `<task>.<loop>.<turn>` | `TurnRecord`: the model's answer of that turn |
| `<task>.<loop>.<turn>.<call>.start` | `ToolStarted`: a tool call began |
| `<task>.<loop>.<turn>.<call>` | `ToolResult`: the tool call's result |
| `<task>.<loop>.<turn>.<call>.pending` | `ApprovalPending`: the call waits for a person |
| `<task>.<loop>.<turn>.<call>.approval` | `ApprovalRecord`: the person's decision |

`<loop>` counts the loops of one attempt (a skill may run several, in a
deterministic order, as it does `ctx.call`s).
"""

from typing import Literal

import msgspec

from natsfleet.agents.llm.types import ToolCall
from natsfleet.protocols import Usage

#: How a tool call ended; anything but "ok" is an error result the model sees.
ToolStatus = Literal["ok", "unknown_tool", "bad_arguments", "error", "timeout", "refused"]


class Claim(msgspec.Struct, frozen=True, kw_only=True, tag="claim"):
    """The attempt that owns the task's journal. A newer claim fences older writers."""

    token: str
    attempt: int
    instance_id: str
    at_ms: int


class TurnRecord(msgspec.Struct, frozen=True, kw_only=True, tag="turn"):
    """One model answer, as the loop used it."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = "stop"
    usage: Usage = Usage()
    model: str = ""
    offline: bool = False
    token: str = ""


class ToolStarted(msgspec.Struct, frozen=True, kw_only=True, tag="start"):
    """A tool call began under `token` (a replay that finds no result runs it again)."""

    name: str
    key: str
    token: str


class ToolResult(msgspec.Struct, frozen=True, kw_only=True, tag="call"):
    """A tool call's result: the text the model sees, and how the call ended."""

    name: str
    status: ToolStatus
    content: str
    duration_ms: float = 0.0
    token: str = ""


class ApprovalPending(msgspec.Struct, frozen=True, kw_only=True, tag="pending"):
    """A call of a tool that needs approval stopped the loop until a person decides."""

    name: str
    arguments: str
    token: str


class ApprovalRecord(msgspec.Struct, frozen=True, kw_only=True, tag="approval"):
    """A person's decision on a pending call, journaled by the attempt that got it."""

    approved: bool
    note: str = ""
    at_ms: int = 0
    token: str = ""


Record = Claim | TurnRecord | ToolStarted | ToolResult | ApprovalPending | ApprovalRecord
