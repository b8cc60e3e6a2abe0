"""Search over the shipped corpus, the on-disk index cache, and the web stub."""

from pathlib import Path

import pytest

from natsfleet.agents.tools.errors import CorpusError, NotConfiguredError
from natsfleet.agents.tools.research import (
    LocalCorpusSearch,
    SearchProvider,
    WebSearchConfig,
    WebSearchProvider,
    chunk_document,
)

CORPUS = Path(__file__).resolve().parents[2] / "examples" / "corpus"


@pytest.fixture
def corpus_search(tmp_path: Path) -> LocalCorpusSearch:
    return LocalCorpusSearch(CORPUS, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize(
    ("question", "document"),
    [
        ("How does JetStream remove duplicate messages?", "deduplication-and-exactly-once.md"),
        ("What is a fencing token?", "leases-and-fencing.md"),
        ("How do NKeys authenticate a user?", "security.md"),
        ("What is an idempotency key?", "idempotency-keys.md"),
        ("How are payloads larger than the maximum message size stored?", "object-store.md"),
        ("How does a JetStream cluster keep working when a server fails?", "clustering.md"),
    ],
)
async def test_question_finds_the_right_document_first(
    corpus_search: LocalCorpusSearch, question: str, document: str
) -> None:
    passages = await corpus_search.search(question, 3)
    assert passages, question
    assert passages[0].source.location == document
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)


async def test_passages_carry_source_title_and_chunk(corpus_search: LocalCorpusSearch) -> None:
    provider: SearchProvider = corpus_search
    (best,) = await provider.search("duplicate window Nats-Msg-Id", 1)
    assert best.source.title == "Deduplication and exactly-once processing"
    assert "Nats-Msg-Id" in best.text
    assert best.source.chunk_index >= 0 and best.score > 0


async def test_nonsense_query_returns_nothing(corpus_search: LocalCorpusSearch) -> None:
    assert await corpus_search.search("zzqx qqvv", 5) == []
    assert await corpus_search.search("the of and", 5) == []


async def test_index_is_cached_on_disk_by_content_hash(tmp_path: Path) -> None:
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "a.md").write_text("# Apples\n\nApples grow on trees in orchards.\n")
    (corpus / "b.md").write_text("# Boats\n\nBoats float on water and carry cargo.\n")
    cache = tmp_path / "cache"
    first = LocalCorpusSearch(corpus, cache_dir=cache)
    assert (await first.search("orchards", 2))[0].source.location == "a.md"
    assert (cache / "bm25" / first.content_hash).is_dir()

    (corpus / "b.md").write_text("# Boats\n\nBoats carry apples from orchards.\n")
    second = LocalCorpusSearch(corpus, cache_dir=cache)
    assert second.content_hash != first.content_hash
    assert {p.source.location for p in await second.search("orchards", 2)} == {"a.md", "b.md"}
    assert len(list((cache / "bm25").iterdir())) == 2


async def test_empty_or_missing_corpus_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError):
        await LocalCorpusSearch(tmp_path / "absent", disk_cache=False).search("x", 1)
    with pytest.raises(CorpusError, match=r"no \.md"):
        await LocalCorpusSearch(tmp_path, disk_cache=False).search("x", 1)


def test_chunking_merges_short_paragraphs_and_keeps_order() -> None:
    text = "# Title\n\nShort.\n\n" + " ".join(["word"] * 40) + "\n\n" + "Another " * 30
    chunks = chunk_document("x.md", text, fallback_title="x")
    assert [c.chunk_index for c in chunks] == [0, 1]
    assert chunks[0].title == "Title" and chunks[0].text.startswith("# Title")


async def test_web_provider_refuses_when_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NATSFLEET_WEB_SEARCH_ENDPOINT", raising=False)
    monkeypatch.delenv("NATSFLEET_WEB_SEARCH_API_KEY", raising=False)
    with pytest.raises(NotConfiguredError, match="NATSFLEET_WEB_SEARCH_ENDPOINT") as info:
        await WebSearchProvider().search("anything", 3)
    assert info.value.retryable is False

    configured = WebSearchProvider(
        WebSearchConfig(endpoint="https://search.invalid", api_key="sekret-key")
    )
    assert configured.configured and "sekret" not in repr(configured.config)
    with pytest.raises(NotConfiguredError, match="_fetch"):
        await configured.search("anything", 3)
