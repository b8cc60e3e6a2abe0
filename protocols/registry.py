"""The list of every wire message type, for schema export and tests."""

from typing import Any

from natsfleet.protocols.agent import (
    Accept,
    Assign,
    AssignBatch,
    AssignBatchReply,
    Bye,
    Cancel,
    Failure,
    Heartbeat,
    Hello,
    OutcomeBatch,
    OutputChunk,
    Progress,
    Reject,
    Result,
    Rollcall,
)
from natsfleet.protocols.base import ErrorReply
from natsfleet.protocols.control import (
    Ack,
    AgentsReply,
    AgentsRequest,
    ApproveRequest,
    CancelRequest,
    DlqReply,
    DlqRequest,
    ListRequest,
    StatusRequest,
    TaskListReply,
    TaskStatusReply,
    WorkflowsReply,
    WorkflowsRequest,
)
from natsfleet.protocols.dlq import DeadLetter
from natsfleet.protocols.spans import SpanRecord
from natsfleet.protocols.task import Submit, TaskEvent

ALL_MESSAGES: tuple[type[Any], ...] = (
    Submit,
    Hello,
    Heartbeat,
    Bye,
    Rollcall,
    Assign,
    AssignBatch,
    Accept,
    Reject,
    AssignBatchReply,
    Cancel,
    Result,
    Failure,
    OutcomeBatch,
    Progress,
    OutputChunk,
    TaskEvent,
    StatusRequest,
    ListRequest,
    CancelRequest,
    ApproveRequest,
    AgentsRequest,
    DlqRequest,
    WorkflowsRequest,
    TaskStatusReply,
    TaskListReply,
    AgentsReply,
    DlqReply,
    WorkflowsReply,
    Ack,
    ErrorReply,
    DeadLetter,
    SpanRecord,
)
