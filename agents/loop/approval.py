"""Approval of tool calls: a call of a tool that needs it pauses the loop.

A tool needs approval when it says so (`needs_approval`: `@tool(approval=True)`,
or any tool wrapped by `requires_approval`). When the model calls one and the
journal holds neither the call's result nor a decision on it:

1. the turn's other calls run (their results are journaled as usual);
2. the call is journaled as `ApprovalPending` (`<loop>.<turn>.<call>.pending`)
   and the skill ends with `AwaitingApproval`: the attempt's outcome is a
   `Failure` of kind `awaiting_approval` naming the call, and the supervisor
   parks the task in `input_required` (no slot, no timer but schedule-to-close);
3. `natsfleet approve TASK` (or `--reject --note WHY`) queues the task again
   with the decision (`Assign.approval`); the next attempt replays its journal
   to the call, journals the decision (`<...>.approval`) and then runs the call
   (approved: `ToolContext.approval_id` is set) or gives the model the refusal
   as the call's result (status `refused`).

A decision journaled once is final for its call: a later attempt (after a
crash) finds it there and does not ask again.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from natsfleet.agents.errors import AwaitingApproval
from natsfleet.agents.llm.types import ToolCall, ToolSpec
from natsfleet.agents.loop.journal import Journal
from natsfleet.agents.loop.records import ApprovalPending, ApprovalRecord, ToolResult
from natsfleet.agents.loop.tools import Tool, ToolContext
from natsfleet.protocols import PendingToolCall, ToolApproval, cut_arguments
from natsfleet.telemetry.redact import redact


def needs_approval(tool: object) -> bool:
    """Whether calls of `tool` wait for a person's approval."""
    return bool(getattr(tool, "needs_approval", False))


def approval_id(key: str, record: ApprovalRecord) -> str:
    """The id of an approval, as a tool passes it on (stable for the decision)."""
    return f"approval:{key}@{record.at_ms}"


def refusal_text(record: ApprovalRecord) -> str:
    """What the model sees for a refused call: the person's reason."""
    reason = record.note or "no reason given"
    return msgspec.json.encode({"error": f"refused by a person: {reason}"}).decode()


class ApprovalGate:
    """The approval side of one loop: which calls wait, and the decisions made."""

    def __init__(
        self, journal: Journal, token: str, decision: ToolApproval | None, index: int
    ) -> None:
        self._journal = journal
        self._token = token
        self._decision = decision
        self._index = index

    def _key(self, turn: int, call: int) -> str:
        return f"{self._index}.{turn}.{call}"

    async def held(
        self, turn: int, calls: Sequence[ToolCall], tools: Mapping[str, Tool]
    ) -> list[int]:
        """The calls of this turn that still wait for a decision (in order).

        The decision this attempt was assigned with is journaled here, for the
        call it names, before anything runs.
        """
        waiting: list[int] = []
        for index, call in enumerate(calls):
            if not needs_approval(tools.get(call.name)):
                continue
            key = self._key(turn, index)
            if isinstance(self._journal.get(key), ToolResult):
                continue
            if isinstance(self._journal.get(key + ".approval"), ApprovalRecord):
                continue
            decision = self._decision
            if decision is not None and decision.key == key:
                await self._journal.write(
                    key + ".approval",
                    ApprovalRecord(
                        approved=decision.approved,
                        note=decision.note,
                        at_ms=decision.at_ms,
                        token=self._token,
                    ),
                )
                continue
            waiting.append(index)
        return waiting

    def decision(self, key: str) -> ApprovalRecord | None:
        """The journaled decision on the call at `key`, if any."""
        record = self._journal.get(key + ".approval")
        return record if isinstance(record, ApprovalRecord) else None

    async def pause(self, turn: int, index: int, call: ToolCall, spec: ToolSpec | None) -> None:
        """Journal the call as pending and end the attempt (`AwaitingApproval`)."""
        key = self._key(turn, index)
        arguments = msgspec.json.encode(call.arguments).decode()
        if not isinstance(self._journal.get(key + ".pending"), ApprovalPending):
            await self._journal.write(
                key + ".pending",
                ApprovalPending(name=call.name, arguments=arguments, token=self._token),
            )
        description = (spec.description if spec is not None else "")[:256]
        raise AwaitingApproval(
            PendingToolCall(
                key=key,
                tool=call.name[:256],
                # Shown in status, events and logs: secrets redacted as in a Failure's detail.
                arguments=cut_arguments(redact(arguments)),
                description=description,
            )
        )


class ApprovedTool:
    """Any tool, needing approval; the approval's id may be passed on as an argument.

    `token_argument` names an input property of the tool (a payment skill's
    `approval_token`, say): it is hidden from the model and filled with
    `ToolContext.approval_id` when the call runs.
    """

    needs_approval = True

    def __init__(self, inner: Tool, *, token_argument: str | None = None) -> None:
        self._inner = inner
        self._token_argument = token_argument
        spec = inner.spec
        parameters = dict(spec.parameters)
        props = parameters.get("properties")
        if token_argument is not None and isinstance(props, dict):
            parameters["properties"] = {k: v for k, v in props.items() if k != token_argument}
            parameters["required"] = [
                r for r in parameters.get("required", []) if r != token_argument
            ]
        description = f"{spec.description} (Asks a person for approval before it runs.)".strip()
        self._spec = ToolSpec(
            name=spec.name, description=description, parameters=parameters, returns=spec.returns
        )

    @property
    def spec(self) -> ToolSpec:
        return self._spec

    @property
    def timeout_s(self) -> float | None:
        return self._inner.timeout_s

    async def run(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        if self._token_argument is not None:
            arguments = {**arguments, self._token_argument: ctx.approval_id}
        return await self._inner.run(arguments, ctx)


def requires_approval(tool: Tool, *, token_argument: str | None = None) -> ApprovedTool:
    """`tool` (a function tool or a fleet skill) with every call waiting for approval."""
    return ApprovedTool(tool, token_argument=token_argument)
