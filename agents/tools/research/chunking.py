"""Split Markdown/text documents into passages small enough to cite.

Paragraphs (blank-line separated) are the unit a reader cites; very short
ones (a lone heading, a one-line list item) are merged into the next so a
passage carries enough words to rank and to read on its own.
"""

import re

import msgspec

#: Paragraphs shorter than this many words are merged with the following one.
MIN_CHUNK_WORDS = 25
#: A paragraph longer than this is cut at sentence ends, so passages stay quotable.
MAX_CHUNK_WORDS = 180

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class Chunk(msgspec.Struct, frozen=True, kw_only=True):
    """A passage of one document before indexing."""

    location: str
    title: str
    chunk_index: int
    text: str


def document_title(text: str, fallback: str) -> str:
    """The first Markdown heading of `text`, else `fallback` (usually the file stem)."""
    for line in text.splitlines():
        match = _HEADING.match(line)
        if match:
            return match.group(1).strip()
    return fallback


def _word_count(text: str) -> int:
    return len(text.split())


def _split_long(paragraph: str) -> list[str]:
    if _word_count(paragraph) <= MAX_CHUNK_WORDS:
        return [paragraph]
    pieces: list[str] = []
    current: list[str] = []
    for sentence in _SENTENCE_END.split(paragraph):
        current.append(sentence)
        if _word_count(" ".join(current)) >= MAX_CHUNK_WORDS:
            pieces.append(" ".join(current))
            current = []
    if current:
        pieces.append(" ".join(current))
    return pieces


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs of `text`, short ones merged forward, long ones cut at sentence ends."""
    raw = [p.strip() for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n"))]
    merged: list[str] = []
    pending = ""
    for paragraph in raw:
        if not paragraph:
            continue
        pending = f"{pending}\n\n{paragraph}" if pending else paragraph
        if _word_count(pending) >= MIN_CHUNK_WORDS:
            merged.extend(_split_long(pending))
            pending = ""
    if pending:
        # A short tail belongs to the passage before it, if there is one.
        if merged:
            merged[-1] = f"{merged[-1]}\n\n{pending}"
        else:
            merged.append(pending)
    return merged


def chunk_document(location: str, text: str, fallback_title: str) -> list[Chunk]:
    """All passages of one document, numbered from 0 in reading order."""
    title = document_title(text, fallback_title)
    return [
        Chunk(location=location, title=title, chunk_index=i, text=paragraph)
        for i, paragraph in enumerate(split_paragraphs(text))
    ]
