"""Research tools: passages with sources from a local corpus or a pluggable provider."""

from natsfleet.agents.tools.research.chunking import Chunk, chunk_document, split_paragraphs
from natsfleet.agents.tools.research.local import (
    CORPUS_ENV,
    LocalCorpusSearch,
    default_cache_dir,
)
from natsfleet.agents.tools.research.types import Passage, PassageSource, SearchProvider
from natsfleet.agents.tools.research.web import WebSearchConfig, WebSearchProvider

__all__ = [
    "CORPUS_ENV",
    "Chunk",
    "LocalCorpusSearch",
    "Passage",
    "PassageSource",
    "SearchProvider",
    "WebSearchConfig",
    "WebSearchProvider",
    "chunk_document",
    "default_cache_dir",
    "split_paragraphs",
]
