"""researcher, writer and editor with the offline provider (no API key)."""

import msgspec

from natsfleet.agents.builtins.content_types import (
    Draft,
    EditInput,
    EditVerdict,
    Findings,
    ResearchInput,
    WriteInput,
)
from natsfleet.agents.builtins.editor import Editor
from natsfleet.agents.builtins.researcher import Researcher
from natsfleet.agents.builtins.writer import Writer
from natsfleet.agents.tools import EditCriteria, cited_numbers
from tests.builtin.harness import call_skill, offline_router

QUESTION = "How does JetStream remove duplicate messages?"


async def research() -> Findings:
    router = offline_router()
    called = await call_skill(Researcher(), "research", ResearchInput(question=QUESTION), router)
    assert isinstance(called.output, Findings)
    return called.output


async def test_research_offline_returns_cited_passages() -> None:
    findings = await research()
    assert findings.offline and findings.model == "offline-extractive"
    assert findings.findings and findings.sources
    locations = [s.location for s in findings.sources]
    assert "deduplication-and-exactly-once.md" in locations
    assert [s.n for s in findings.sources] == list(range(1, len(findings.sources) + 1))
    for finding in findings.findings:
        assert finding.sources and all(1 <= n <= len(findings.sources) for n in finding.sources)
        assert finding.text
    assert findings.summary and "[offline]" not in findings.summary


async def test_write_keeps_citations_and_edit_approves() -> None:
    findings = await research()
    router = offline_router()
    draft = (await call_skill(Writer(), "write", WriteInput(findings=findings), router)).output
    assert isinstance(draft, Draft)
    assert draft.text.startswith("# ") and draft.offline
    assert set(cited_numbers(draft.text)) == {n for f in findings.findings for n in f.sources}
    criteria = EditCriteria(min_words=60, max_words=800, min_sources_cited=2)
    verdict = (
        await call_skill(Editor(), "edit", EditInput(draft=draft, criteria=criteria), router)
    ).output
    assert isinstance(verdict, EditVerdict)
    assert verdict.verdict == "approve" and verdict.approved and not verdict.issues


async def test_edit_revises_with_notes_and_a_fixed_draft() -> None:
    findings = await research()
    router = offline_router()
    draft = (await call_skill(Writer(), "write", WriteInput(findings=findings), router)).output
    word = draft.text.split("\n\n")[1].split()[3].strip(".,")
    bad = msgspec.structs.replace(draft, text=draft.text + " See also [42].")
    criteria = EditCriteria(max_words=draft.words - 5, banned_phrases=(word,))
    verdict = (
        await call_skill(Editor(), "edit", EditInput(draft=bad, criteria=criteria), router)
    ).output
    assert verdict.verdict == "revise" and not verdict.approved
    kinds = {i.kind for i in verdict.issues}
    assert kinds == {"too_long", "unresolved_citation", "banned_phrase"}
    assert any("[42]" in note for note in verdict.notes)
    assert "[42]" not in verdict.draft.text
    assert verdict.draft.words <= criteria.max_words
    # The writer's next round starts from the editor's revision and passes the checks.
    again = WriteInput(findings=findings, notes=verdict.notes, previous=verdict.draft)
    second = (await call_skill(Writer(), "write", again, router)).output
    assert second.revision == 2
    check = (
        await call_skill(Editor(), "edit", EditInput(draft=second, criteria=criteria), router)
    ).output
    assert check.approved, check.notes


async def test_writer_meets_mechanical_criteria_when_given() -> None:
    findings = await research()
    criteria = EditCriteria(max_words=40)
    called = await call_skill(
        Writer(), "write", WriteInput(findings=findings, criteria=criteria), offline_router()
    )
    assert called.output.words <= 40
