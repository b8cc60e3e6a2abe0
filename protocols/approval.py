"""A tool call of an agent loop waiting for a person (docs/tools.md, "Approval").

The agent ends its attempt with a `Failure` of kind `awaiting_approval` that
carries the `PendingToolCall`; the supervisor parks the task in
`input_required` with it (`TaskRecord.pending_call`), holding no slot and no
timer but the task's schedule-to-close. `natsfleet approve TASK` (or
`--reject`) records a `ToolApproval` on the task and queues it again; the next
Assign carries the decision (`Assign.approval`) and the next attempt, replaying
its journal, reaches the call and runs it (approved) or gives the model the
refusal as the call's result.
"""

from typing import Annotated

import msgspec

from natsfleet.protocols.limits import LABEL_MAX_CHARS, EpochMs, Label

#: The arguments shown with a pending call are cut to this many characters.
PENDING_ARGUMENTS_MAX_CHARS = 4_000
#: A decision's note (the refusal's reason the model sees) at most.
APPROVAL_NOTE_MAX_CHARS = 2_000

CallKey = Annotated[str, msgspec.Meta(min_length=1, max_length=LABEL_MAX_CHARS)]


class PendingToolCall(msgspec.Struct, frozen=True, kw_only=True):
    """The call a paused loop waits on: where it is, which tool, with what.

    `key` is the call's place in the task's journal (`<loop>.<turn>.<call>`);
    `arguments` is the model's JSON, cut to `PENDING_ARGUMENTS_MAX_CHARS`
    (for people to read: the journal keeps the call itself).
    """

    key: CallKey
    tool: Label
    arguments: Annotated[str, msgspec.Meta(max_length=PENDING_ARGUMENTS_MAX_CHARS + 64)] = ""
    description: Label = ""


class ToolApproval(msgspec.Struct, frozen=True, kw_only=True):
    """A person's decision on the pending call `key`: run it, or refuse with a reason."""

    key: CallKey
    approved: bool
    note: Annotated[str, msgspec.Meta(max_length=APPROVAL_NOTE_MAX_CHARS)] = ""
    at_ms: EpochMs = 0


def cut_arguments(text: str) -> str:
    """`text` bounded for a `PendingToolCall` (marked when cut)."""
    if len(text) <= PENDING_ARGUMENTS_MAX_CHARS:
        return text
    return text[:PENDING_ARGUMENTS_MAX_CHARS] + f"... [cut, {len(text)} chars]"


__all__ = [
    "APPROVAL_NOTE_MAX_CHARS",
    "PENDING_ARGUMENTS_MAX_CHARS",
    "PendingToolCall",
    "ToolApproval",
    "cut_arguments",
]
