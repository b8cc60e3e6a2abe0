"""Deterministic checks the editor runs on a draft before (or instead of) asking a model.

Each check returns typed issues with a note a writer can act on; an empty
list means the draft meets the criteria. Citations are `[n]` markers (also
`[1, 3]` and `[2-4]`) numbering the sources from 1.
"""

import re
from collections.abc import Sequence
from enum import StrEnum

import msgspec


class IssueKind(StrEnum):
    """What an `EditIssue` is about."""

    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    UNRESOLVED_CITATION = "unresolved_citation"
    TOO_FEW_SOURCES = "too_few_sources"
    BANNED_PHRASE = "banned_phrase"


class EditCriteria(msgspec.Struct, frozen=True, kw_only=True):
    """What a draft must satisfy. Zero (or empty) disables a check."""

    min_words: int = 0
    max_words: int = 0
    min_sources_cited: int = 0
    banned_phrases: tuple[str, ...] = ()


class EditIssue(msgspec.Struct, frozen=True, kw_only=True):
    """One problem found, with a human-readable note and, where useful, the offending text."""

    kind: IssueKind
    note: str
    excerpt: str = ""


_CITATION = re.compile(r"\[(\d+(?:\s*[-\u2013,]\s*\d+)*)\]")
_WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")


def count_words(text: str) -> int:
    """Words in `text`, not counting citation markers."""
    return len(_WORD.findall(_CITATION.sub(" ", text)))


def cited_numbers(text: str) -> list[int]:
    """Every source number cited, in order of appearance (ranges expanded)."""
    numbers: list[int] = []
    for match in _CITATION.finditer(text):
        for part in re.split(r"\s*,\s*", match[1]):
            bounds = [int(n) for n in re.split(r"\s*[-\u2013]\s*", part)]
            numbers.extend(range(bounds[0], bounds[-1] + 1) if len(bounds) == 2 else bounds)
    return numbers


def check_length(text: str, criteria: EditCriteria) -> list[EditIssue]:
    """Word count within `[min_words, max_words]`."""
    words = count_words(text)
    if criteria.min_words and words < criteria.min_words:
        return [
            EditIssue(
                kind=IssueKind.TOO_SHORT,
                note=f"{words} words; at least {criteria.min_words} required "
                f"({criteria.min_words - words} more)",
            )
        ]
    if criteria.max_words and words > criteria.max_words:
        return [
            EditIssue(
                kind=IssueKind.TOO_LONG,
                note=f"{words} words; at most {criteria.max_words} allowed "
                f"(cut {words - criteria.max_words})",
            )
        ]
    return []


def check_citations(text: str, source_count: int, criteria: EditCriteria) -> list[EditIssue]:
    """Every `[n]` names one of the `source_count` sources, and enough distinct ones are cited."""
    issues: list[EditIssue] = []
    numbers = cited_numbers(text)
    known = f"sources are numbered 1-{source_count}" if source_count else "no sources were given"
    for bad in sorted({n for n in numbers if not 1 <= n <= source_count}):
        issues.append(
            EditIssue(
                kind=IssueKind.UNRESOLVED_CITATION,
                note=f"[{bad}] cites no source: {known}",
                excerpt=f"[{bad}]",
            )
        )
    distinct = {n for n in numbers if 1 <= n <= source_count}
    if criteria.min_sources_cited and len(distinct) < criteria.min_sources_cited:
        issues.append(
            EditIssue(
                kind=IssueKind.TOO_FEW_SOURCES,
                note=f"{len(distinct)} distinct sources cited; at least "
                f"{criteria.min_sources_cited} required",
            )
        )
    return issues


def check_banned_phrases(text: str, criteria: EditCriteria) -> list[EditIssue]:
    """Occurrences of banned phrases, case-insensitive, whole words, any spacing."""
    issues = []
    for phrase in criteria.banned_phrases:
        words = phrase.split()
        if not words:
            continue
        pattern = r"(?<!\w)" + r"\s+".join(re.escape(w) for w in words) + r"(?!\w)"
        found = re.findall(pattern, text, re.IGNORECASE)
        if found:
            times = "once" if len(found) == 1 else f"{len(found)} times"
            issues.append(
                EditIssue(
                    kind=IssueKind.BANNED_PHRASE,
                    note=f"banned phrase {phrase!r} used {times}",
                    excerpt=found[0],
                )
            )
    return issues


def check_draft(
    text: str, sources: int | Sequence[object], criteria: EditCriteria
) -> list[EditIssue]:
    """All checks on a draft.

    Args:
        text: The draft.
        sources: The sources the draft may cite (a sequence, numbered from 1) or their count.
        criteria: What to check.

    Returns:
        The issues, in the order length, citations, banned phrases; empty if the draft passes.
    """
    source_count = sources if isinstance(sources, int) else len(sources)
    return [
        *check_length(text, criteria),
        *check_citations(text, source_count, criteria),
        *check_banned_phrases(text, criteria),
    ]
