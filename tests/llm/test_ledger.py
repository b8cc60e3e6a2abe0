"""Ledger totals per call, task and workflow; budgets checked before and after calls."""

from typing import Any

import pytest

from natsfleet.agents.llm import BudgetExceeded, Ledger, TextDelta, user
from natsfleet.protocols import Usage


def m(name: str, provider: str = "openai", **extra: Any) -> dict[str, Any]:
    return {"name": name, "provider": provider, "model": name, "tier": "small", **extra}


# $3 / $15 per million tokens: 12 in + 7 out = 0.000141 USD per wire call.
PRICED = {"input_usd_per_mtok": 3.0, "output_usd_per_mtok": 15.0}
CALL_USD = (12 * 3.0 + 7 * 15.0) / 1e6


async def test_ledger_totals_per_call_task_and_workflow(make_router: Any) -> None:
    router = make_router([m("a", **PRICED), m("b", "anthropic", **PRICED)])
    workflow = Ledger("workflow w1")
    t1 = router.bind(task_id="t1", parent=workflow)
    t2 = router.bind(task_id="t2", parent=workflow)
    r1 = await t1.complete(user("one"))
    await t1.complete(user("two", model="b"))
    await t2.complete(user("three", model="a"))
    assert r1.cost_usd == pytest.approx(CALL_USD)
    assert t1.usage == Usage(
        calls=2, input_tokens=24, output_tokens=14, cost_usd=pytest.approx(2 * CALL_USD)
    )
    assert t2.usage.calls == 1
    assert workflow.usage.calls == 3
    assert workflow.spent_usd == pytest.approx(3 * CALL_USD)
    assert [c.deployment for c in workflow.calls] == ["a", "b", "a"]
    assert {c.provider for c in t1.ledger.calls} == {"openai", "anthropic"}


async def test_budget_stops_before_the_call(make_router: Any, wire: Any) -> None:
    router = make_router([m("a", **PRICED)])
    # max_tokens=1024 output at $15/M alone is ~$0.015: over a $0.001 budget.
    llm = router.bind(task_id="t1", budget_usd=0.001)
    with pytest.raises(BudgetExceeded) as caught:
        await llm.complete(user("hello"))
    err = caught.value
    assert not err.retryable
    assert err.scope == "task t1" and err.limit_usd == 0.001 and err.estimate_usd > 0.001
    assert "spent $0.000000" in str(err) and "task t1" in str(err)
    assert wire.count("a") == 0


async def test_budget_picks_a_deployment_that_fits(make_router: Any) -> None:
    router = make_router(
        [
            m("pricey", input_usd_per_mtok=30, output_usd_per_mtok=60, quality=1.0),
            m("cheap", **PRICED),
        ],
        routing={"weights": {"cost": 0, "latency": 0, "quality": 1}},
    )
    llm = router.bind(task_id="t1", budget_usd=0.02)
    assert (await llm.complete(user("hello"))).deployment == "cheap"


async def test_budget_checked_after_the_call_names_the_spend(make_router: Any, wire: Any) -> None:
    router = make_router([m("a", **PRICED)])
    wire.script("a", wire.ok("long", usage=(100_000, 7)))
    workflow = Ledger("workflow w", budget_usd=0.1)
    llm = router.bind(task_id="t1", parent=workflow, budget_usd=1.0)
    with pytest.raises(BudgetExceeded) as caught:
        await llm.complete(user("small prompt", max_tokens=10))
    err = caught.value
    assert err.scope == "workflow w"
    assert err.spent_usd == pytest.approx(0.3 + 7 * 15 / 1e6)
    assert llm.usage.calls == 1  # the spend is recorded: it happened
    with pytest.raises(BudgetExceeded):
        await llm.complete(user("again", max_tokens=10))
    assert wire.count("a") == 1


async def test_streaming_records_usage_and_feeds_the_sink(make_router: Any) -> None:
    router = make_router([m("a", "anthropic", **PRICED)])
    chunks: list[str] = []

    async def sink(text: str) -> None:
        chunks.append(text)

    llm = router.bind(task_id="t1", on_chunk=sink)
    text = await llm.ask("tell me")
    assert text == "reply from a" == "".join(chunks)
    assert len(chunks) > 1
    assert llm.usage.calls == 1 and llm.usage.cost_usd == pytest.approx(CALL_USD)
    events = [e async for e in llm.stream(user("more"))]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "reply from a"
    assert llm.usage.calls == 2
