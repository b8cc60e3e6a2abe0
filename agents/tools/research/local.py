"""Lexical search over a local folder of Markdown/text documents, with bm25s.

The index is built once per process per corpus content and cached on disk
under a key derived from the folder's content hash, so a fleet of researcher
processes over the same corpus builds it once. The passages themselves are
re-derived from the files on each load (cheap, and the hash guarantees they
match the cached index), which keeps the cache to bm25s' own files.
"""

import asyncio
import hashlib
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from natsfleet.agents.tools.errors import CorpusError
from natsfleet.agents.tools.research.chunking import Chunk, chunk_document
from natsfleet.agents.tools.research.types import Passage, PassageSource

if TYPE_CHECKING:
    from collections.abc import Sequence

log = logging.getLogger(__name__)

#: Bump when chunking or tokenizing changes: old cached indexes then no longer match.
INDEX_FORMAT = "natsfleet-bm25-v1"
DOCUMENT_SUFFIXES = (".md", ".markdown", ".txt")
CORPUS_ENV = "NATSFLEET_CORPUS_DIR"
CACHE_ENV = "NATSFLEET_CACHE_DIR"


class _Index(msgspec.Struct, frozen=True):
    retriever: Any  # bm25s.BM25; untyped library
    chunks: tuple[Chunk, ...]
    content_hash: str


# One index per content hash per process: several providers over the same
# folder (or a folder re-created with identical files) share it.
_PROCESS_INDEXES: dict[str, _Index] = {}
_BUILD_LOCK = threading.Lock()


def default_cache_dir() -> Path:
    """`$NATSFLEET_CACHE_DIR`, else `$XDG_CACHE_HOME/natsfleet`, else `~/.cache/natsfleet`."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "natsfleet"


def _corpus_files(corpus_dir: Path) -> list[Path]:
    if not corpus_dir.is_dir():
        raise CorpusError(str(corpus_dir), "not a directory")
    files = sorted(
        p
        for p in corpus_dir.rglob("*")
        if p.is_file() and p.suffix.lower() in DOCUMENT_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise CorpusError(str(corpus_dir), f"no {'/'.join(DOCUMENT_SUFFIXES)} documents")
    return files


def _read_corpus(corpus_dir: Path) -> tuple[str, list[Chunk]]:
    digest = hashlib.sha256(INDEX_FORMAT.encode())
    chunks: list[Chunk] = []
    for path in _corpus_files(corpus_dir):
        rel = path.relative_to(corpus_dir).as_posix()
        data = path.read_bytes()
        digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
        text = data.decode("utf-8", errors="replace")
        chunks.extend(chunk_document(rel, text, fallback_title=path.stem.replace("-", " ")))
    if not chunks:
        raise CorpusError(str(corpus_dir), "documents hold no text")
    return digest.hexdigest()[:32], chunks


def _tokenize(texts: "Sequence[str]") -> Any:
    import bm25s  # heavy (numpy, scipy): only when a search actually happens
    import Stemmer

    return bm25s.tokenize(
        list(texts),
        stopwords="en",
        stemmer=Stemmer.Stemmer("english"),
        return_ids=False,
        show_progress=False,
    )


def _load_or_build(cache_root: Path | None, content_hash: str, chunks: list[Chunk]) -> Any:
    import bm25s

    target = cache_root / "bm25" / content_hash if cache_root else None
    if target is not None and target.is_dir():
        try:
            return bm25s.BM25.load(str(target), show_progress=False)
        except (OSError, ValueError) as exc:
            log.warning(
                "discarding unreadable index cache", extra={"path": str(target), "error": str(exc)}
            )
    retriever = bm25s.BM25()
    # The title goes into every passage's terms: a passage deep in a document
    # about fencing is about fencing even if it never repeats the word.
    retriever.index(_tokenize([f"{c.title}\n{c.text}" for c in chunks]), show_progress=False)
    if target is not None:
        _save_atomically(retriever, target)
    return retriever


def _save_atomically(retriever: Any, target: Path) -> None:
    # Written aside then renamed: concurrent processes never read a half index.
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
        retriever.save(str(staging), show_progress=False)
        try:
            staging.rename(target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another process won the race
    except OSError as exc:
        log.warning("index cache not written", extra={"path": str(target), "error": str(exc)})


class LocalCorpusSearch:
    """`SearchProvider` over a local folder of `.md`/`.markdown`/`.txt` files.

    Args:
        corpus_dir: The folder to index (recursively).
        cache_dir: Where to keep built indexes; defaults to `default_cache_dir()`.
        disk_cache: False keeps the index in memory only.
    """

    name = "local"

    def __init__(
        self,
        corpus_dir: str | Path,
        *,
        cache_dir: str | Path | None = None,
        disk_cache: bool = True,
    ) -> None:
        self.corpus_dir = Path(corpus_dir).resolve()
        self._cache_root = (
            (Path(cache_dir) if cache_dir else default_cache_dir()) if disk_cache else None
        )
        self._index: _Index | None = None

    @classmethod
    def from_env(cls, default_dir: str | Path | None = None) -> "LocalCorpusSearch":
        """The corpus named by `$NATSFLEET_CORPUS_DIR`, else `default_dir`."""
        corpus = os.environ.get(CORPUS_ENV) or default_dir
        if not corpus:
            raise CorpusError("<unset>", f"set {CORPUS_ENV} to a folder of documents")
        return cls(corpus)

    @property
    def content_hash(self) -> str:
        """The hash the index is keyed by (builds the index if needed)."""
        return self._ensure_index().content_hash

    def _ensure_index(self) -> _Index:
        if self._index is not None:
            return self._index
        with _BUILD_LOCK:
            content_hash, chunks = _read_corpus(self.corpus_dir)
            index = _PROCESS_INDEXES.get(content_hash)
            if index is None:
                retriever = _load_or_build(self._cache_root, content_hash, chunks)
                index = _Index(retriever=retriever, chunks=tuple(chunks), content_hash=content_hash)
                _PROCESS_INDEXES[content_hash] = index
            self._index = index
            return index

    def search_sync(self, query: str, k: int) -> list[Passage]:
        """Blocking form of `search`, for scripts and for the thread it runs in."""
        index = self._ensure_index()
        k = min(max(k, 0), len(index.chunks))
        tokens = _tokenize([query])
        if k == 0 or not tokens or not tokens[0]:
            return []
        ids, scores = index.retriever.retrieve(tokens, k=k, show_progress=False)
        passages = []
        for doc_id, score in zip(ids[0].tolist(), scores[0].tolist(), strict=True):
            if score <= 0.0:
                break  # sorted best first; the rest share no term with the query
            chunk = index.chunks[doc_id]
            source = PassageSource(
                location=chunk.location, title=chunk.title, chunk_index=chunk.chunk_index
            )
            passages.append(Passage(text=chunk.text, source=source, score=round(score, 4)))
        return passages

    async def search(self, query: str, k: int) -> list[Passage]:
        """The `k` best passages for `query`, best first; passages sharing no term are dropped."""
        # Indexing and scoring are CPU work in numpy; keep the event loop free.
        return await asyncio.to_thread(self.search_sync, query, k)
