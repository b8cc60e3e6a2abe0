"""The editor's deterministic draft checks."""

from natsfleet.agents.tools import (
    EditCriteria,
    IssueKind,
    check_draft,
    cited_numbers,
    count_words,
)

DRAFT = (
    "JetStream stores messages in streams [1]. Consumers acknowledge them [2], "
    "and duplicates are dropped inside a window [1, 3]."
)


def test_a_good_draft_has_no_issues() -> None:
    criteria = EditCriteria(min_words=10, max_words=40, min_sources_cited=3)
    assert check_draft(DRAFT, ["a", "b", "c"], criteria) == []


def test_words_and_citations_are_counted() -> None:
    assert count_words("It's a fast, well-known broker [1][2].") == 5
    assert cited_numbers("see [2-4] and [1, 6] but not [link](x) or [a]") == [2, 3, 4, 1, 6]


def test_length_bounds() -> None:
    (short,) = check_draft(DRAFT, 3, EditCriteria(min_words=50))
    assert short.kind is IssueKind.TOO_SHORT and "at least 50" in short.note
    (long,) = check_draft(DRAFT, 3, EditCriteria(max_words=5))
    assert long.kind is IssueKind.TOO_LONG and "at most 5" in long.note


def test_citations_must_resolve_and_cover_enough_sources() -> None:
    issues = check_draft(DRAFT, 2, EditCriteria(min_sources_cited=3))
    assert [i.kind for i in issues] == [IssueKind.UNRESOLVED_CITATION, IssueKind.TOO_FEW_SOURCES]
    assert issues[0].excerpt == "[3]" and "numbered 1-2" in issues[0].note
    assert "2 distinct sources" in issues[1].note
    (none,) = check_draft("No citations at all.", 0, EditCriteria(min_sources_cited=1))
    assert none.kind is IssueKind.TOO_FEW_SOURCES


def test_banned_phrases_are_case_insensitive_whole_words() -> None:
    text = "In Today's  Fast-Paced world, it is a game changer. Delve deeper! No gamechanger."
    criteria = EditCriteria(banned_phrases=("today's fast-paced", "game changer", "delve", "elve"))
    issues = check_draft(text, 0, criteria)
    assert [i.kind for i in issues] == [IssueKind.BANNED_PHRASE] * 3
    assert issues[0].excerpt == "Today's  Fast-Paced"
    assert "'game changer' used once" in issues[1].note
