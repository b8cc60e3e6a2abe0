"""The writer: `write(brief, findings, notes?) -> draft` that keeps the `[n]` citations.

With a model, the draft is written from the numbered findings (and, in a
revision round, the editor's notes and the previous draft). Offline, the
findings are arranged into an article deterministically. Either way,
citations of unknown sources are dropped and, if criteria are given, what can
be fixed mechanically is fixed before the draft is returned.
"""

import logging

from natsfleet.agents.agent import Agent, AgentConfig
from natsfleet.agents.builtins.common import is_offline, model_label, sentences, task_llm
from natsfleet.agents.builtins.content_types import Draft, Findings, WriteInput
from natsfleet.agents.builtins.revise import drop_unknown_citations, revise_mechanically
from natsfleet.agents.context import TaskContext
from natsfleet.agents.errors import SkillError
from natsfleet.agents.llm import TaskLLM, Tier
from natsfleet.agents.skill import skill
from natsfleet.agents.tools.editing import count_words

log = logging.getLogger(__name__)

_SYSTEM = (
    "You are a writer. Write a short, clear article in Markdown that answers the brief using "
    "only the numbered findings. Start with a '# ' title line. Keep the citation markers: "
    "every sentence that uses a finding ends with its source numbers, like [2] or [1, 3]. "
    "Cite only the numbers given. Do not add a list of sources; it is added separately."
)


def _cite(numbers: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(n) for n in numbers) + "]"


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def compose(title: str, findings: Findings) -> str:
    """A deterministic article: title, an opening, findings in paragraphs, a closing line."""
    items = [f"{_sentence(f.text)[:-1]} {_cite(f.sources)}." for f in findings.findings]
    cited = sorted({n for f in findings.findings for n in f.sources})
    opening = (
        f"This article answers the question \u201c{findings.question.strip()}\u201d from "
        f"{len(cited)} source{'s' if len(cited) != 1 else ''}."
    )
    paragraphs = [" ".join(items[i : i + 2]) for i in range(0, len(items), 2)]
    closing = ""
    if findings.findings:
        first = findings.findings[0]
        lead = sentences(first.text)[:1] or [first.text]
        closing = f"In short: {_sentence(lead[0])[:-1]} {_cite(first.sources)}."
    return "\n\n".join([f"# {title}", opening, *paragraphs, closing]).strip()


def split_title(text: str, fallback: str) -> tuple[str, str]:
    """(`title`, full text with a `# title` first line)."""
    lines = text.strip().splitlines()
    if lines and lines[0].startswith("# "):
        return lines[0][2:].strip(), text.strip()
    return fallback, f"# {fallback}\n\n{text.strip()}"


def _title_from(brief: str) -> str:
    title = brief.strip().rstrip("?.!").strip()
    if len(title.split()) > 12:
        title = " ".join(title.split()[:12]) + "..."
    return title[:1].upper() + title[1:] if title else "Findings"


def _prompt(input: WriteInput, brief: str) -> str:
    numbered = "\n".join(f"- {f.text} {_cite(f.sources)}" for f in input.findings.findings)
    sources = "\n".join(f"[{s.n}] {s.title}" for s in input.findings.sources)
    parts = [f"Brief: {brief}", f"Findings:\n{numbered}", f"Sources:\n{sources}"]
    if input.previous is not None:
        parts.append(f"Previous draft:\n{input.previous.text}")
    if input.notes:
        notes = "\n".join(f"- {n}" for n in input.notes)
        parts.append(f"Editor's notes to address:\n{notes}")
    if input.criteria is not None:
        c = input.criteria
        if c.max_words:
            parts.append(f"Length: at most {c.max_words} words.")
        if c.min_words:
            parts.append(f"Length: at least {c.min_words} words.")
        if c.banned_phrases:
            parts.append("Never use: " + ", ".join(repr(p) for p in c.banned_phrases))
    return "\n\n".join(parts)


class Writer(Agent):
    """Writes a cited article from research findings; revises on the editor's notes."""

    name = "writer"
    version = "1"
    description = "Drafts articles from cited findings, keeping the citations."
    config = AgentConfig(capacity=4)

    @skill(version="1")
    async def write(self, input: WriteInput, ctx: TaskContext) -> Draft:
        """A Markdown draft answering the brief from the findings, citing them as [n]."""
        if not input.findings.findings:
            raise SkillError("no findings to write from", retryable=False)
        llm = task_llm(ctx)
        brief = input.brief.strip() or input.findings.question
        revision = 1 if input.previous is None else input.previous.revision + 1
        ctx.progress(0.2, f"writing revision {revision}")
        text = await self._text(input, brief, llm)
        source_count = len(input.findings.sources)
        text = drop_unknown_citations(text, source_count)
        if input.criteria is not None:
            text = revise_mechanically(text, source_count, input.criteria)
        title, text = split_title(text, _title_from(brief))
        return Draft(
            title=title,
            text=text,
            sources=input.findings.sources,
            words=count_words(text),
            model=model_label(llm),
            offline=is_offline(llm),
            revision=revision,
        )

    async def _text(self, input: WriteInput, brief: str, llm: TaskLLM) -> str:
        if is_offline(llm):
            if input.previous is not None:
                return input.previous.text  # the editor's revision already applied its notes
            return compose(_title_from(brief), input.findings)
        return await llm.ask(
            _prompt(input, brief), system=_SYSTEM, tier=Tier.MEDIUM, max_tokens=1500
        )
