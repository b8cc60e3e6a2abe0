"""The approval gate inside one loop, with the journal in memory and the offline
provider as the model (no processes: the fleet side is test_approval.py)."""

from dataclasses import dataclass
from typing import Any

import pytest

from natsfleet.agents.errors import AwaitingApproval
from natsfleet.agents.llm.types import ChatMessage
from natsfleet.agents.loop import Loop, ToolContext, ToolResult, tool
from natsfleet.agents.loop.approval import requires_approval
from natsfleet.agents.loop.journal import Journal
from natsfleet.agents.loop.records import ApprovalPending, ApprovalRecord
from natsfleet.protocols import ToolApproval
from tests.loop.test_units import FakeContext, OfflineLLM, memory_journal

pytestmark = pytest.mark.asyncio
ASK = "pay 5 and note it"


@dataclass
class Ctx(FakeContext):
    approval: ToolApproval | None = None


def _loop(journal: Journal, tools: list[Any], approval: ToolApproval | None = None) -> Loop:
    ctx = Ctx(llm=OfflineLLM(), approval=approval)
    return Loop(
        ctx, journal, 0, tools=tools, system="", max_turns=4,
        max_parallel_tools=4, max_tokens=64, tier=None, model=None,
    )  # fmt: skip


async def _run(loop: Loop) -> str:
    return str(await loop.run([ChatMessage(role="user", content=ASK)], None))


async def test_a_call_waits_the_others_run_and_the_decision_applies_to_its_call_only() -> None:
    runs: list[str] = []

    @tool(approval=True)
    async def pay(amount: int, ctx: ToolContext) -> str:
        """Pay an amount."""
        runs.append(f"pay {amount} {ctx.approval_id}")
        return "paid"

    @tool
    async def note(text: str) -> str:
        """Note something down."""
        runs.append("note")
        return "noted"

    journal = memory_journal()
    with pytest.raises(AwaitingApproval) as paused:
        await _run(_loop(journal, [pay, note]))
    call = paused.value.pending_call
    assert (call.key, call.tool, call.arguments) == ("0.0.0", "pay", '{"amount":5}')
    assert runs == ["note"]  # the turn's other call ran and was journaled
    assert isinstance(journal.get("0.0.0.pending"), ApprovalPending)
    assert isinstance(journal.get("0.0.1"), ToolResult)

    # A decision on another call is not this one's: it waits again.
    other = ToolApproval(key="0.3.0", approved=True, at_ms=1)
    with pytest.raises(AwaitingApproval):
        await _run(_loop(journal, [pay, note], other))
    assert runs == ["note"]

    decision = ToolApproval(key="0.0.0", approved=True, note="ok", at_ms=42)
    answer = await _run(_loop(journal, [pay, note], decision))
    assert runs == ["note", "pay 5 approval:0.0.0@42"] and answer.startswith("[offline] Done")
    assert journal.get("0.0.0.approval") == ApprovalRecord(
        approved=True, note="ok", at_ms=42, token="tok1"
    )
    # Replayed later (a crash after it ran), nothing runs and nobody is asked again.
    assert await _run(_loop(journal, [pay, note])) == answer
    assert len(runs) == 2


async def test_a_refusal_is_the_calls_result_and_a_wrapped_tool_gets_the_approval_id() -> None:
    seen: list[dict[str, Any]] = []

    @tool
    async def pay(amount: int, approval_token: str = "") -> str:
        """Pay an amount."""
        seen.append({"amount": amount, "approval_token": approval_token})
        return "paid"

    gated = requires_approval(pay, token_argument="approval_token")
    assert "approval_token" not in gated.spec.parameters["properties"]
    assert "approval" in gated.spec.description

    journal = memory_journal()
    with pytest.raises(AwaitingApproval):
        await _run(_loop(journal, [gated]))
    refusal = ToolApproval(key="0.0.0", approved=False, note="too much", at_ms=7)
    answer = await _run(_loop(journal, [gated], refusal))
    result = journal.get("0.0.0")
    assert isinstance(result, ToolResult) and result.status == "refused"
    assert result.content == '{"error":"refused by a person: too much"}'
    assert "refused by a person: too much" in answer and not seen

    journal = memory_journal()
    with pytest.raises(AwaitingApproval):
        await _run(_loop(journal, [gated]))
    await _run(_loop(journal, [gated], ToolApproval(key="0.0.0", approved=True, at_ms=9)))
    assert seen == [{"amount": 5, "approval_token": "approval:0.0.0@9"}]
