"""Inputs and outputs of the content skills: research, write, edit.

Citations are `[n]` markers numbering `sources` from 1; a source is one
document (a corpus file or a URL), so two passages of one document share a
number.
"""

from typing import Literal

import msgspec

from natsfleet.agents.tools.editing import EditCriteria, EditIssue


class Source(msgspec.Struct, frozen=True, kw_only=True):
    """A cited document: `n` is its citation number."""

    n: int
    title: str
    location: str
    passages: tuple[int, ...] = ()


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One statement with the numbers of the sources that support it."""

    text: str
    sources: tuple[int, ...]


class ResearchInput(msgspec.Struct, frozen=True, kw_only=True):
    """`research`: a question, and how many passages to read."""

    question: str
    max_passages: int = 6


class Findings(msgspec.Struct, frozen=True, kw_only=True):
    """`research` output: findings citing `sources`, and a short summary."""

    question: str
    summary: str
    findings: tuple[Finding, ...]
    sources: tuple[Source, ...]
    model: str
    offline: bool = False


class Draft(msgspec.Struct, frozen=True, kw_only=True):
    """An article in Markdown; `text` cites `sources` as `[n]` (no sources list inside)."""

    title: str
    text: str
    sources: tuple[Source, ...]
    words: int
    model: str
    offline: bool = False
    revision: int = 1


class WriteInput(msgspec.Struct, frozen=True, kw_only=True):
    """`write`: what to write (`brief`, default: the findings' question), from what.

    `notes` and `previous` come from the editor in a revision round;
    `criteria`, when given, are met before the draft is returned where that
    can be done mechanically (length, banned phrases, citation numbers).
    """

    findings: Findings
    brief: str = ""
    notes: tuple[str, ...] | None = None
    previous: Draft | None = None
    criteria: EditCriteria | None = None
    round: int = 1


#: What `edit` checks when no criteria are given.
DEFAULT_CRITERIA = EditCriteria(min_words=80, max_words=1200, min_sources_cited=2)


class EditInput(msgspec.Struct, frozen=True, kw_only=True):
    """`edit`: the draft and the criteria it must meet."""

    draft: Draft
    criteria: EditCriteria | None = None  # None: DEFAULT_CRITERIA
    round: int = 1


class EditVerdict(msgspec.Struct, frozen=True, kw_only=True):
    """`edit` output: approve or revise, why, and the editor's revised draft.

    `approved` is `verdict == "approve"`, for workflow conditions.
    """

    verdict: Literal["approve", "revise"]
    approved: bool
    notes: tuple[str, ...]
    issues: tuple[EditIssue, ...]
    draft: Draft
    model: str
    offline: bool = False
    round: int = 1  # the input's round, passed through for workflow outputs
