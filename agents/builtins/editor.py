"""The editor: `edit(draft, criteria) -> approve | revise`, with notes and a revised draft.

The deterministic checks (`natsfleet.agents.tools.editing`: length, citations,
banned phrases) decide whether a draft *can* be approved; a model, when one is
configured, also reviews clarity and may revise. Offline the checks alone
decide, and the revised draft is the mechanical revision (banned phrases cut,
unknown citations dropped, length trimmed).
"""

import logging
from typing import Literal

import msgspec

from natsfleet.agents.agent import Agent, AgentConfig
from natsfleet.agents.builtins.common import is_offline, model_label, task_llm
from natsfleet.agents.builtins.content_types import (
    DEFAULT_CRITERIA,
    Draft,
    EditInput,
    EditVerdict,
)
from natsfleet.agents.builtins.revise import revise_mechanically
from natsfleet.agents.builtins.writer import split_title
from natsfleet.agents.context import TaskContext
from natsfleet.agents.llm import TaskLLM, Tier
from natsfleet.agents.skill import skill
from natsfleet.agents.tools.editing import EditCriteria, EditIssue, check_draft, count_words

log = logging.getLogger(__name__)

_SYSTEM = (
    "You are an editor. Review the draft against the criteria and for clarity and accuracy "
    "to its citations. Reply in exactly this form:\n"
    "VERDICT: APPROVE or VERDICT: REVISE\n"
    "NOTES:\n- one note per line\n"
    "REVISED DRAFT:\n<the full revised draft in Markdown, keeping every [n] citation>"
)


def describe_criteria(criteria: EditCriteria) -> list[str]:
    lines = []
    if criteria.min_words:
        lines.append(f"at least {criteria.min_words} words")
    if criteria.max_words:
        lines.append(f"at most {criteria.max_words} words")
    if criteria.min_sources_cited:
        lines.append(f"cite at least {criteria.min_sources_cited} distinct sources as [n]")
    if criteria.banned_phrases:
        lines.append("never use: " + ", ".join(repr(p) for p in criteria.banned_phrases))
    return lines


class Review(msgspec.Struct, frozen=True, kw_only=True):
    """A model's review, parsed."""

    approve: bool
    notes: tuple[str, ...]
    revised: str


def parse_review(text: str) -> Review:
    """Parse `VERDICT: / NOTES: / REVISED DRAFT:`; anything unparsable is not an approval."""
    approve = False
    notes: list[str] = []
    revised: list[str] = []
    section = ""
    for line in text.splitlines():
        upper = line.strip().upper()
        if upper.startswith("VERDICT:"):
            approve = "APPROVE" in upper
        elif upper.startswith("NOTES:"):
            section = "notes"
        elif upper.startswith("REVISED DRAFT:"):
            section = "draft"
        elif section == "notes" and line.strip().startswith(("-", "*")):
            notes.append(line.strip().lstrip("-*").strip())
        elif section == "draft":
            revised.append(line)
    return Review(approve=approve, notes=tuple(notes), revised="\n".join(revised).strip())


class Editor(Agent):
    """Approves a draft or sends it back with notes and a revised draft."""

    name = "editor"
    version = "1"
    description = "Checks drafts against length, citation and wording criteria."
    config = AgentConfig(capacity=4)

    @skill(version="1")
    async def edit(self, input: EditInput, ctx: TaskContext) -> EditVerdict:
        """Approve or revise a draft against its criteria, with notes and a revised draft."""
        llm = task_llm(ctx)
        draft, criteria = input.draft, input.criteria or DEFAULT_CRITERIA
        issues = check_draft(draft.text, draft.sources, criteria)
        ctx.progress(0.3, f"{len(issues)} issue(s) from the checks")
        notes = [issue.note for issue in issues]
        revised_text = revise_mechanically(draft.text, len(draft.sources), criteria)
        approve = not issues
        if not is_offline(llm):
            review = await self._review(draft, criteria, issues, llm)
            approve = approve and review.approve
            notes += [n for n in review.notes if n not in notes]
            if review.revised:
                candidate = revise_mechanically(review.revised, len(draft.sources), criteria)
                # The model's revision is kept only if it does not fail the checks anew.
                if len(check_draft(candidate, draft.sources, criteria)) <= len(issues):
                    revised_text = candidate
        title, revised_text = split_title(revised_text, draft.title)
        revised = msgspec.structs.replace(
            draft,
            title=title,
            text=revised_text,
            words=count_words(revised_text),
            model=model_label(llm) if not is_offline(llm) else draft.model,
        )
        verdict: Literal["approve", "revise"] = "approve" if approve else "revise"
        return EditVerdict(
            verdict=verdict,
            approved=approve,
            notes=tuple(notes),
            issues=tuple(issues),
            draft=revised,
            model=model_label(llm),
            offline=is_offline(llm),
            round=input.round,
        )

    async def _review(
        self, draft: Draft, criteria: EditCriteria, issues: list[EditIssue], llm: TaskLLM
    ) -> Review:
        found = "\n".join(f"- {i.note}" for i in issues) or "- none"
        sources = "\n".join(f"[{s.n}] {s.title}" for s in draft.sources)
        prompt = (
            "Criteria:\n"
            + "\n".join(f"- {c}" for c in describe_criteria(criteria))
            + f"\n\nAutomatic checks found:\n{found}\n\nSources:\n{sources}\n\n"
            + f"Draft:\n{draft.text}"
        )
        answer = await llm.ask(prompt, system=_SYSTEM, tier=Tier.MEDIUM, max_tokens=2000)
        return parse_review(answer)
