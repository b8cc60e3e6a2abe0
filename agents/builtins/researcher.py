"""The researcher: `research(question) -> findings with citations`.

Passages come from a `SearchProvider` (the local corpus by default, BM25 over
`examples/corpus/` or `$NATSFLEET_CORPUS_DIR`); a model picks and condenses
them into cited findings. Offline, each top passage gives its most relevant
sentences as a finding, and the offline provider writes an extractive summary.
"""

import logging
import os
import re
from pathlib import Path
from typing import Any

from natsfleet.agents.agent import Agent, AgentConfig
from natsfleet.agents.builtins.common import (
    is_offline,
    model_label,
    sentences,
    strip_offline_mark,
    task_llm,
    terms,
)
from natsfleet.agents.builtins.content_types import Finding, Findings, ResearchInput, Source
from natsfleet.agents.context import TaskContext
from natsfleet.agents.errors import SkillError
from natsfleet.agents.llm import TaskLLM, Tier
from natsfleet.agents.skill import skill
from natsfleet.agents.telemetry import execute_tool
from natsfleet.agents.tools.editing import cited_numbers
from natsfleet.agents.tools.research import LocalCorpusSearch, Passage, SearchProvider
from natsfleet.agents.tools.research.web import WebSearchProvider
from natsfleet.process.specs import resolve_spec

log = logging.getLogger(__name__)

SEARCH_PROVIDER_ENV = "NATSFLEET_SEARCH_PROVIDER"
#: The corpus shipped with the repository, used when `$NATSFLEET_CORPUS_DIR` is unset.
SHIPPED_CORPUS = Path(__file__).resolve().parents[2] / "examples" / "corpus"

_SYSTEM = (
    "You are a careful researcher. Use only the numbered sources given. Answer with 3 to 6 "
    "findings, one per line, each starting with '- ' and ending with the numbers of the "
    "sources that support it, like [2] or [1, 3]. Then one line starting with 'SUMMARY:' "
    "that answers the question in two or three sentences, also with citations."
)


def make_search_provider(spec: str | None = None) -> SearchProvider:
    """`local` (default), `web`, or `module:Class` (any class matching `SearchProvider`)."""
    spec = spec or os.environ.get(SEARCH_PROVIDER_ENV) or "local"
    if spec == "local":
        return LocalCorpusSearch.from_env(SHIPPED_CORPUS)
    if spec == "web":
        return WebSearchProvider()
    factory: Any = resolve_spec(spec)
    provider: SearchProvider = factory()
    return provider


#: Passages scoring under this fraction of the best one are left out as off-topic.
RELEVANCE_FLOOR = 0.3


def relevant(passages: list[Passage]) -> list[Passage]:
    """The passages scoring at least `RELEVANCE_FLOOR` of the best (best first already)."""
    if not passages:
        return passages
    floor = passages[0].score * RELEVANCE_FLOOR
    return [p for p in passages if p.score >= floor]


def number_sources(passages: list[Passage]) -> tuple[tuple[Source, ...], list[int]]:
    """One source per document, numbered by first appearance; each passage's number."""
    numbers: dict[str, int] = {}
    chunks: dict[str, list[int]] = {}
    titles: dict[str, str] = {}
    of_passage = []
    for passage in passages:
        where = passage.source.location
        numbers.setdefault(where, len(numbers) + 1)
        titles.setdefault(where, passage.source.title)
        chunks.setdefault(where, []).append(passage.source.chunk_index)
        of_passage.append(numbers[where])
    sources = tuple(
        Source(n=n, title=titles[where], location=where, passages=tuple(chunks[where]))
        for where, n in numbers.items()
    )
    return sources, of_passage


def extract_finding(question: str, passage: Passage, number: int, max_words: int = 60) -> Finding:
    """The passage's sentences that share most terms with the question, in reading order."""
    wanted = terms(question)
    candidates = sentences(passage.text) or [passage.text.strip()]
    ranked = sorted(range(len(candidates)), key=lambda i: (-len(wanted & terms(candidates[i])), i))
    chosen: list[int] = []
    for i in ranked:
        if chosen and sum(len(candidates[j].split()) for j in [*chosen, i]) > max_words:
            break
        chosen.append(i)
    text = " ".join(candidates[i] for i in sorted(chosen))
    return Finding(text=text, sources=(number,))


def _passages_prompt(question: str, passages: list[Passage], numbers: list[int]) -> str:
    blocks = [
        f"[{n}] {p.source.title} ({p.source.location})\n{p.text}"
        for p, n in zip(passages, numbers, strict=True)
    ]
    return f"Question: {question}\n\nSources:\n\n" + "\n\n".join(blocks)


def parse_findings(text: str, source_count: int) -> tuple[list[Finding], str]:
    """Findings lines (`- ... [n]`) citing only known sources, and the SUMMARY line."""
    findings: list[Finding] = []
    summary = ""
    for line in text.splitlines():
        line = line.strip()
        if line.upper().startswith("SUMMARY:"):
            summary = line[len("SUMMARY:") :].strip()
            continue
        if not line.startswith(("- ", "* ")):
            continue
        cited = tuple(dict.fromkeys(cited_numbers(line)))
        if cited and all(1 <= n <= source_count for n in cited):
            body = re.sub(r"\s*\[[\d,\s\-\u2013]+\]\s*$", "", line[2:].strip())
            findings.append(Finding(text=body, sources=cited))
    return findings, summary


class Researcher(Agent):
    """Answers a question with findings that cite their sources."""

    name = "researcher"
    version = "1"
    description = "Finds passages in a corpus (or the web) and condenses them with citations."
    config = AgentConfig(capacity=4)

    def __init__(self, search: SearchProvider | None = None) -> None:
        self._search = search

    async def setup(self) -> None:
        if self._search is None:
            self._search = make_search_provider()

    @skill(version="1")
    async def research(self, input: ResearchInput, ctx: TaskContext) -> Findings:
        """Findings with citations for a question, from the configured search provider."""
        if not input.question.strip():
            raise SkillError("the question is empty", retryable=False)
        if self._search is None:
            self._search = make_search_provider()
        llm = task_llm(ctx)
        ctx.progress(0.1, f"searching {self._search.name}")
        with execute_tool("search", provider=self._search.name):
            found = await self._search.search(input.question, max(1, input.max_passages))
        passages = relevant(found)
        if not passages:
            raise SkillError(f"no passage matches {input.question!r}", retryable=False)
        sources, numbers = number_sources(passages)
        ctx.progress(0.4, f"reading {len(passages)} passages from {len(sources)} sources")
        findings, summary = await self._condense(input.question, passages, numbers, llm)
        return Findings(
            question=input.question,
            summary=summary,
            findings=tuple(findings),
            sources=sources,
            model=model_label(llm),
            offline=is_offline(llm),
        )

    async def _condense(
        self, question: str, passages: list[Passage], numbers: list[int], llm: TaskLLM
    ) -> tuple[list[Finding], str]:
        if is_offline(llm):
            findings = [
                extract_finding(question, p, n) for p, n in zip(passages, numbers, strict=True)
            ]
            # Plain sentences only: the extractive summariser would quote headings otherwise.
            text = "\n".join(s for p in passages for s in sentences(p.text))
            summary = await llm.ask(f"Question: {question}\n\n{text}", tier=Tier.SMALL)
            lines = strip_offline_mark(summary).removeprefix("Summary:").splitlines()
            return findings, " ".join(line.strip().lstrip("- ") for line in lines if line.strip())
        prompt = _passages_prompt(question, passages, numbers)
        answer = await llm.ask(prompt, system=_SYSTEM, tier=Tier.MEDIUM, max_tokens=1200)
        findings, summary = parse_findings(answer, max(numbers))
        if not findings:
            log.warning("model answer had no usable findings; using the passages themselves")
            findings = [
                extract_finding(question, p, n) for p, n in zip(passages, numbers, strict=True)
            ]
        return findings, summary or findings[0].text
