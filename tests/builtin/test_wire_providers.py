"""The built-in skills through the real Anthropic and OpenAI SDKs against a local wire server."""

from datetime import date
from typing import Any

from natsfleet.agents.builtins.booker import Booker
from natsfleet.agents.builtins.content_types import EditInput, ResearchInput, WriteInput
from natsfleet.agents.builtins.editor import Editor
from natsfleet.agents.builtins.researcher import Researcher
from natsfleet.agents.builtins.travel_types import ParseTripInput
from natsfleet.agents.builtins.writer import Writer
from natsfleet.agents.tools import EditCriteria
from tests.builtin.harness import call_skill

QUESTION = "How does JetStream remove duplicate messages?"
RESEARCH_ANSWER = (
    "- JetStream drops a message whose Nats-Msg-Id it saw within the window [1]\n"
    "- Idempotency keys make side effects happen once [2]\n"
    "- A bogus claim [9]\n"
    "SUMMARY: Duplicates are dropped by message id within a window [1]."
)
ARTICLE = (
    "# Deduplication in JetStream\n\nJetStream remembers message ids for a window and drops "
    "repeats [1]. Idempotency keys carry the same idea into side effects [2]. It is a game "
    "changer [7]."
)


async def test_research_write_edit_on_a_model(wire: Any, wire_router: Any) -> None:
    router = wire_router()
    wire.script("m-medium", wire.ok(RESEARCH_ANSWER))
    research = await call_skill(Researcher(), "research", ResearchInput(question=QUESTION), router)
    findings = research.output
    assert not findings.offline and findings.model == "m-medium"
    assert [f.sources for f in findings.findings] == [(1,), (2,)]  # [9] names no source
    assert findings.findings[0].text.startswith("JetStream drops")
    assert findings.summary.startswith("Duplicates are dropped")
    assert research.llm.usage.calls == 1 and research.llm.usage.cost_usd > 0

    wire.script("m-medium", wire.ok(ARTICLE))
    written = await call_skill(Writer(), "write", WriteInput(findings=findings), router)
    draft = written.output
    assert draft.title == "Deduplication in JetStream" and "[7]" not in draft.text
    assert "".join(written.streamed).startswith("# Deduplication")  # streamed to ctx.stream

    review = (
        "VERDICT: APPROVE\nNOTES:\n- drop the cliche\nREVISED DRAFT:\n"
        "# Deduplication in JetStream\n\nJetStream drops repeated message ids [1]. "
        "Idempotency keys do the same for side effects [2]."
    )
    wire.script("m-medium", wire.ok(review))
    criteria = EditCriteria(min_sources_cited=2, banned_phrases=("game changer",))
    verdict = (
        await call_skill(Editor(), "edit", EditInput(draft=draft, criteria=criteria), router)
    ).output
    # The model approves, but the checks found a banned phrase: revise, with the model's draft.
    assert verdict.verdict == "revise" and "drop the cliche" in verdict.notes
    assert "game changer" not in verdict.draft.text.lower()
    assert "repeated message ids [1]" in verdict.draft.text

    wire.script("m-medium", wire.ok(review))
    clean = verdict.draft
    approved = (
        await call_skill(Editor(), "edit", EditInput(draft=clean, criteria=criteria), router)
    ).output
    assert approved.approved and approved.model == "m-medium"


async def test_parse_trip_on_a_model_and_fallback_to_rules(wire: Any, wire_router: Any) -> None:
    router = wire_router()
    wire.script(
        "m-small",
        wire.ok(
            '{"origin": "Boston", "destination": "SFO", "date": "2026-03-10", "passengers": 2}'
        ),
        wire.ok("I cannot help with that."),
    )
    request = ParseTripInput(
        request="two of us to San Francisco on the 10th", today=date(2026, 3, 2)
    )
    called = await call_skill(Booker(), "parse_trip", request, router)
    trip = called.output
    assert trip.parsed_by == "model:m-small"
    assert (trip.origin, trip.destination, trip.passengers) == ("BOS", "SFO", 2)
    assert called.llm.usage.calls == 1
    fallback = ParseTripInput(request="from BOS to Chicago on 2026-03-09", today=date(2026, 3, 2))
    trip = (await call_skill(Booker(), "parse_trip", fallback, router)).output
    assert trip.parsed_by == "rules" and trip.destination == "ORD"
