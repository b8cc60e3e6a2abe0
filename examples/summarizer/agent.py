"""An agent a user would write: extractive summaries, no LLM needed.

Run one instance (NATS and a supervisor already running):

    natsfleet agent run examples.summarizer.agent:Summarizer

(from the repository root, or with it on PYTHONPATH). docs/writing-an-agent.md
walks through it.
"""

import re
from collections import Counter

import msgspec

from natsfleet.agents import Agent, AgentConfig, SkillError, TaskContext, skill

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z][a-z'-]+")
_STOPWORDS = frozenset(
    "a an and are as at be but by for from has have in is it its of on or that the their "
    "this to was were which will with not can so than then there these they we you".split()
)


class Document(msgspec.Struct, frozen=True, kw_only=True):
    """What to summarize."""

    text: str
    max_sentences: int = 2


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    summary: str
    sentences: int
    keywords: list[str]


class Summarizer(Agent):
    """Picks the sentences that carry the text's most frequent words."""

    name = "summarizer"
    version = "1.0"
    config = AgentConfig(capacity=8, heartbeat_interval_s=1.0, drain_grace_s=10.0)

    @skill(version="1")
    async def summarize(self, input: Document, ctx: TaskContext) -> Summary:
        """Summarize a text in at most `max_sentences` of its own sentences."""
        if input.max_sentences < 1:
            raise SkillError("max_sentences must be at least 1", retryable=False)
        sentences = [s.strip() for s in _SENTENCE_END.split(input.text.strip()) if s.strip()]
        if not sentences:
            raise SkillError("nothing to summarize: the text is empty", retryable=False)
        ctx.progress(0.2, f"{len(sentences)} sentences")
        counts = Counter(w for w in _WORD.findall(input.text.lower()) if w not in _STOPWORDS)

        def score(sentence: str) -> float:
            words = [w for w in _WORD.findall(sentence.lower()) if w not in _STOPWORDS]
            return sum(counts[w] for w in words) / (len(words) or 1)

        ranked = sorted(range(len(sentences)), key=lambda i: (-score(sentences[i]), i))
        chosen = sorted(ranked[: input.max_sentences])
        for i in chosen:
            ctx.stream(sentences[i] + " ")
        ctx.progress(1.0, "done")
        ctx.log.info("summarized %d sentences into %d", len(sentences), len(chosen))
        return Summary(
            summary=" ".join(sentences[i] for i in chosen),
            sentences=len(chosen),
            keywords=[w for w, _ in counts.most_common(5)],
        )
