"""The agent loop: the model answers, its tool calls run, the results go back.

One loop is `run_loop(ctx, prompt, tools=...)` (a skill calls it as
`ctx.loop(...)`). Each turn:

1. the model's answer: from the journal if this turn was journaled (no call
   is made), else from `ctx.llm` (text streams to watchers), then journaled;
2. no tool calls: the final answer (validated as `output` if given: one
   corrective turn when it is not valid); else
3. each tool call (concurrently, at most `max_parallel_tools` at once): its
   result from the journal if journaled, else the call is journaled as
   started, run, and its result journaled. Every tool failure (unknown tool,
   bad arguments, an exception, a timeout) is a result the model sees.

Only loop-level limits end the skill: `max_turns`, the deadline and the
budget (errors.py), and a newer attempt owning the journal.
"""

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import msgspec

from natsfleet.agents import telemetry
from natsfleet.agents.errors import describe_exception
from natsfleet.agents.llm.errors import BudgetExceeded
from natsfleet.agents.llm.ledger import CallRecord
from natsfleet.agents.llm.providers.offline import OFFLINE_MARK
from natsfleet.agents.llm.types import (
    ChatMessage,
    LLMRequest,
    LLMResponse,
    Tier,
    ToolCall,
)
from natsfleet.agents.loop.approval import ApprovalGate, approval_id, needs_approval, refusal_text
from natsfleet.agents.loop.compaction import transcript_line
from natsfleet.agents.loop.errors import (
    DuplicateToolError,
    InvalidOutputError,
    LoopDeadlineError,
    MaxTurnsExceededError,
)
from natsfleet.agents.loop.journal import Journal
from natsfleet.agents.loop.records import ToolResult, ToolStarted, ToolStatus, TurnRecord
from natsfleet.agents.loop.tools import Tool, ToolArgumentsError, ToolContext

T = TypeVar("T")

#: A tool result longer than this is cut (the model sees that it was).
MAX_RESULT_CHARS = 16_000
# Below this much time left, a model call cannot usefully start.
_MIN_TURN_S = 0.05
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


class LoopContext(Protocol):
    """What the loop needs of a skill's `TaskContext`."""

    task_id: str
    attempt: int
    token: str
    budget_usd: float | None

    @property
    def llm(self) -> Any: ...

    @property
    def remaining_s(self) -> float | None: ...

    def progress_event(self, note: str) -> None: ...


@dataclass(slots=True)
class LoopStats:
    """What one loop did: model calls made and replayed, tool runs made and replayed."""

    turns: int = 0
    model_calls: int = 0
    replayed_turns: int = 0
    tool_runs: int = 0
    replayed_tools: int = 0
    reruns: int = 0


def usage_of(response: LLMResponse) -> Any:
    return CallRecord.of(response).as_usage()


class Loop:
    """One run of the loop over one journal (see module docstring)."""

    def __init__(
        self,
        ctx: LoopContext,
        journal: Journal,
        index: int,
        *,
        tools: Sequence[Tool],
        system: str,
        max_turns: int,
        max_parallel_tools: int,
        max_tokens: int,
        tier: Tier | None,
        model: str | None,
        max_result_chars: int = MAX_RESULT_CHARS,
    ) -> None:
        if max_turns < 1 or max_parallel_tools < 1:
            raise ValueError("max_turns and max_parallel_tools must be at least 1")
        self.ctx = ctx
        self.journal = journal
        self.index = index
        self.tools = {t.spec.name: t for t in tools}
        if len(self.tools) != len(tools):
            names = [t.spec.name for t in tools]
            raise DuplicateToolError(sorted({n for n in names if names.count(n) > 1}))
        self.system = system
        self.max_turns = max_turns
        self.max_tokens = max_tokens
        self.tier = tier
        self.model = model
        self.max_result_chars = max_result_chars
        self._slots = asyncio.Semaphore(max_parallel_tools)
        self.parallel_tool_calls = max_parallel_tools > 1
        self.stats = LoopStats()
        # Tool calls that wait for a person (approval.py); the decision the
        # attempt was assigned with comes from its context.
        self.approvals = ApprovalGate(journal, ctx.token, getattr(ctx, "approval", None), index)

    async def run(self, messages: list[ChatMessage], output: type[T] | None) -> str | T:
        system = self.system
        if output is not None:
            schema = msgspec.json.encode(msgspec.json.schema(output)).decode()
            system = (
                f"{system}\n\n" if system else ""
            ) + f"Give the final answer as one JSON value matching this JSON Schema: {schema}"
        corrected = False
        for turn in range(self.max_turns):
            self.stats.turns = turn + 1
            answer = await self._answer(turn, messages, system)
            messages.append(
                ChatMessage(role="assistant", content=answer.text, tool_calls=answer.tool_calls)
            )
            if answer.tool_calls:
                results = await self._run_calls(turn, answer.tool_calls, messages)
                messages += [
                    ChatMessage(role="tool", content=r.content, tool_call_id=c.id)
                    for c, r in zip(answer.tool_calls, results, strict=True)
                ]
                handed = self._handed_over(answer.tool_calls, results)
                if handed is None:
                    continue
                return _handoff_answer(handed, output)
            if output is None:
                return answer.text
            try:
                return _decode_output(answer.text, output)
            except msgspec.ValidationError as exc:
                problem = str(exc)
            except msgspec.DecodeError as exc:
                problem = f"not JSON: {exc}"
            if corrected:
                raise InvalidOutputError(getattr(output, "__name__", str(output)), problem)
            corrected = True
            messages.append(
                ChatMessage(
                    role="user",
                    content=f"That answer is not valid ({problem}). Reply with only the "
                    "JSON value, matching the schema.",
                )
            )
        raise MaxTurnsExceededError(self.max_turns)

    # -- turns -------------------------------------------------------------------

    def _key(self, *parts: int) -> str:
        return ".".join(str(p) for p in (self.index, *parts))

    def _spent_usd(self) -> float:
        return sum(
            r.usage.cost_usd for r in self.journal.entries.values() if isinstance(r, TurnRecord)
        )

    async def _answer(self, turn: int, messages: list[ChatMessage], system: str) -> TurnRecord:
        key = self._key(turn)
        journaled = self.journal.get(key)
        if isinstance(journaled, TurnRecord):
            self.stats.replayed_turns += 1
            return journaled
        remaining_s = self.ctx.remaining_s
        if remaining_s is not None and remaining_s < _MIN_TURN_S:
            raise LoopDeadlineError(turn)
        budget = self.ctx.budget_usd
        spent = self._spent_usd()
        if budget is not None and spent >= budget:
            # Turns an earlier attempt paid for count too: they are in the journal.
            raise BudgetExceeded(
                scope=f"task {self.ctx.task_id}", spent_usd=spent, limit_usd=budget
            )
        request = LLMRequest(
            messages=tuple(messages),
            system=system,
            tools=tuple(t.spec for t in self.tools.values()),
            max_tokens=self.max_tokens,
            tier=self.tier,
            model=self.model,
            parallel_tool_calls=self.parallel_tool_calls,
        )
        response: LLMResponse = await self.ctx.llm.generate(request)
        self.stats.model_calls += 1
        record = TurnRecord(
            text=response.text,
            tool_calls=_distinct_ids(response.tool_calls, key),
            finish_reason=response.finish_reason,
            usage=usage_of(response),
            model=response.model,
            offline=response.offline,
            token=self.ctx.token,
        )
        await self.journal.write(key, record)
        return record

    def _handed_over(
        self, calls: tuple[ToolCall, ...], results: list[ToolResult]
    ) -> ToolResult | None:
        """The first successful handoff of the turn: its answer ends the loop."""
        for call, result in zip(calls, results, strict=True):
            if getattr(self.tools.get(call.name), "ends_loop", False) and result.status == "ok":
                return result
        return None

    async def _run_calls(
        self, turn: int, calls: tuple[ToolCall, ...], messages: list[ChatMessage]
    ) -> list[ToolResult]:
        transcript = ""
        if any(getattr(self.tools.get(c.name), "ends_loop", False) for c in calls):
            transcript = "\n".join(transcript_line(m) for m in messages)
        held = await self.approvals.held(turn, calls, self.tools)
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self._call(turn, i, c, transcript))
                    for i, c in enumerate(calls)
                    if i not in held
                ]
        except BaseExceptionGroup as group_error:
            # One failure (a fenced journal, say) is the loop's: raise it as itself.
            raise _first(group_error) from None
        if held:  # the others' results are journaled: now wait for a person
            first = calls[held[0]]
            tool = self.tools.get(first.name)
            self.ctx.progress_event(f"tool {first.name} awaits approval")
            await self.approvals.pause(turn, held[0], first, tool.spec if tool else None)
        return [t.result() for t in tasks]

    async def _call(self, turn: int, index: int, call: ToolCall, transcript: str) -> ToolResult:
        key = self._key(turn, index)
        journaled = self.journal.get(key)
        if isinstance(journaled, ToolResult):
            self.stats.replayed_tools += 1
            return journaled
        stable = f"{self.ctx.task_id}/{self.index}/{turn}/{index}"
        decision = (
            self.approvals.decision(key) if needs_approval(self.tools.get(call.name)) else None
        )
        if decision is not None and not decision.approved:
            refused = ToolResult(
                name=call.name,
                status="refused",
                content=refusal_text(decision),
                token=self.ctx.token,
            )
            await self.journal.write(key, refused)
            self.ctx.progress_event(f"tool {call.name} refused")
            return refused
        rerun = isinstance(self.journal.get(key + ".start"), ToolStarted)
        async with self._slots:
            await self.journal.write(
                key + ".start", ToolStarted(name=call.name, key=stable, token=self.ctx.token)
            )
            self.ctx.progress_event(f"tool {call.name} started")
            context = ToolContext(
                key=stable,
                task_id=self.ctx.task_id,
                attempt=self.ctx.attempt,
                token=self.ctx.token,
                name=call.name,
                rerun=rerun,
                conversation=transcript,
                approval_id=approval_id(key, decision) if decision is not None else "",
            )
            started = time.perf_counter()
            with telemetry.execute_tool(call.name, **{"gen_ai.tool.call.id": call.id}):
                status, content = await self._execute(call, context)
            result = ToolResult(
                name=call.name,
                status=status,
                content=content,
                duration_ms=(time.perf_counter() - started) * 1000,
                token=self.ctx.token,
            )
            await self.journal.write(key, result)
            self.stats.tool_runs += 1
            self.stats.reruns += int(rerun)
            self.ctx.progress_event(f"tool {call.name} {status}")
        return result

    async def _execute(self, call: ToolCall, context: ToolContext) -> tuple[ToolStatus, str]:
        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            # The name is the model's: bounded before it is echoed back and journaled.
            return "unknown_tool", _error(f"no tool named {call.name[:100]!r}; tools: {known}")
        if set(call.arguments) == {"_raw"}:
            return "bad_arguments", _error(
                f"arguments are not a JSON object: {call.arguments['_raw']!r}"[:2000]
            )
        scope = asyncio.timeout(tool.timeout_s)
        try:
            async with scope:
                value = await tool.run(call.arguments, context)
        except ToolArgumentsError as exc:
            return "bad_arguments", _error(f"arguments do not fit the schema: {exc}")
        except TimeoutError as exc:
            if scope.expired():
                return "timeout", _error(f"no result within {tool.timeout_s} s")
            return "error", self._described(exc)
        except Exception as exc:
            return "error", self._described(exc)
        text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
        if len(text) > self.max_result_chars:
            text = text[: self.max_result_chars] + f"... [cut at {self.max_result_chars} chars]"
        return "ok", text

    @staticmethod
    def _described(exc: Exception) -> str:
        error_type, detail, _ = describe_exception(exc)
        return _error(f"{error_type}: {detail}")


def _handoff_answer(result: ToolResult, output: type[T] | None) -> str | T:
    """A handoff's result as the loop's final answer: decoded as `output`, else
    the other agent's text (its output if it is a JSON string, else its JSON)."""
    if output is not None:
        try:
            return msgspec.json.decode(result.content, type=output)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise InvalidOutputError(getattr(output, "__name__", str(output)), str(exc)) from None
    try:
        value = msgspec.json.decode(result.content)
    except msgspec.DecodeError:
        return result.content
    return value if isinstance(value, str) else result.content


def _error(message: str) -> str:
    return msgspec.json.encode({"error": message}).decode()


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    first: BaseException = group.exceptions[0]
    return first


def _distinct_ids(calls: tuple[ToolCall, ...], key: str) -> tuple[ToolCall, ...]:
    """Tool call ids as the providers need them: present and distinct in a turn."""
    seen: set[str] = set()
    out: list[ToolCall] = []
    for i, call in enumerate(calls):
        if not call.id or call.id in seen:
            call = msgspec.structs.replace(call, id=f"call_{key.replace('.', '_')}_{i}")
        seen.add(call.id)
        out.append(call)
    return tuple(out)


def _decode_output(text: str, output: type[T]) -> T:
    body = text.strip().removeprefix(OFFLINE_MARK).strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    elif not body.startswith(("{", "[")):
        start = min((i for i in (body.find("{"), body.find("[")) if i >= 0), default=-1)
        if start >= 0:
            body = body[start:]
    return msgspec.json.decode(body, type=output)
