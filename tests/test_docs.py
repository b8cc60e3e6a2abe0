"""docs/protocol.md names everything the protocol code defines."""

from pathlib import Path

import msgspec

from natsfleet.protocols import ALL_MESSAGES, DlqReason, ErrorCode, FailureKind, RejectCode

DOC_DIR = Path(__file__).resolve().parent.parent / "docs"
DOC = (DOC_DIR / "protocol.md").read_text()


def test_every_message_is_documented() -> None:
    for message in ALL_MESSAGES:
        tag = msgspec.inspect.type_info(message).tag  # type: ignore[attr-defined]
        assert f"`{tag}` | {message.__name__} |" in DOC, message.__name__
        for field in msgspec.structs.fields(message):
            assert f"`{field.encode_name}`" in DOC, (message.__name__, field.name)


def test_every_code_reason_and_kind_is_documented() -> None:
    for enum in (ErrorCode, DlqReason, RejectCode, FailureKind):
        for member in enum:
            assert f"`{member.value}`" in DOC, member


def test_the_edge_rule_is_documented_as_the_code_has_it() -> None:
    from natsfleet.protocols.limits import ID_MAX_CHARS, KEY_MAX_CHARS, MAX_DURATION_S

    operations = (DOC_DIR / "operations.md").read_text()
    for doc in (DOC, operations):
        text = " ".join(doc.split())  # line breaks do not matter
        assert f"1 to {ID_MAX_CHARS} characters of `A-Z a-z 0-9 _ -`" in text
        assert f"1 to {KEY_MAX_CHARS} characters without control characters" in text
    assert f"366 days ({int(MAX_DURATION_S):,} s)" in DOC
