"""Mechanical revisions the writer and the editor both apply: no model needed.

Banned phrases are cut, citations of sources that do not exist are dropped,
and an over-long draft is cut at sentence ends, keeping its title.
"""

import re
from collections.abc import Sequence

from natsfleet.agents.tools.editing import EditCriteria, count_words

_CITATION = re.compile(r"\s*\[(\d+(?:\s*[-\u2013,]\s*\d+)*)\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def drop_banned(text: str, phrases: Sequence[str]) -> str:
    for phrase in phrases:
        words = phrase.split()
        if words:
            pattern = r"(?<!\w)" + r"\s+".join(re.escape(w) for w in words) + r"(?!\w)"
            text = re.sub(pattern, "", text, flags=re.IGNORECASE)
    return re.sub(r"[ \t]{2,}", " ", re.sub(r" +([,.;:])", r"\1", text))


def drop_unknown_citations(text: str, source_count: int) -> str:
    def keep(match: re.Match[str]) -> str:
        numbers = [int(n) for n in re.findall(r"\d+", match[1])]
        return match[0] if all(1 <= n <= source_count for n in numbers) else ""

    return _CITATION.sub(keep, text)


def trim_to(text: str, max_words: int) -> str:
    """Whole sentences (and headings) from the start while they fit in `max_words`."""
    kept: list[str] = []
    used = 0
    for paragraph in text.split("\n\n"):
        if paragraph.lstrip().startswith("#"):
            kept.append(paragraph)
            continue
        pieces = []
        for sentence in _SENTENCE_END.split(paragraph.strip()):
            words = count_words(sentence)
            if used + words > max_words:
                break
            pieces.append(sentence)
            used += words
        if pieces:
            kept.append(" ".join(pieces))
        if used >= max_words or len(pieces) < len(_SENTENCE_END.split(paragraph.strip())):
            break
    return "\n\n".join(kept)


def revise_mechanically(text: str, source_count: int, criteria: EditCriteria) -> str:
    """`text` with banned phrases, unknown citations and excess length removed."""
    text = drop_banned(text, criteria.banned_phrases)
    text = drop_unknown_citations(text, source_count)
    if criteria.max_words and count_words(text) > criteria.max_words:
        text = trim_to(text, criteria.max_words)
    return text.strip()
