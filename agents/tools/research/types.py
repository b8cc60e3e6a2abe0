"""What a search returns, and the interface every search provider implements."""

from typing import Protocol

import msgspec


class PassageSource(msgspec.Struct, frozen=True, kw_only=True):
    """Where a passage comes from: a corpus file (relative path) or a URL."""

    location: str
    title: str
    chunk_index: int = 0


class Passage(msgspec.Struct, frozen=True, kw_only=True):
    """One retrieved chunk of text with its source and relevance score.

    Scores are provider-specific (BM25 for the local corpus) and only
    comparable within one result list.
    """

    text: str
    source: PassageSource
    score: float


class SearchProvider(Protocol):
    """Anything the researcher can ask for passages.

    Implementations return at most `k` passages, best first, and raise a
    `ToolError` subclass when they cannot search (never an empty list to hide
    a failure).
    """

    name: str

    async def search(self, query: str, k: int) -> list[Passage]: ...
