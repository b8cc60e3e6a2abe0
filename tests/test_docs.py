"""docs/protocol.md names everything the protocol code defines."""

from pathlib import Path

import msgspec

from natsfleet.protocols import ALL_MESSAGES, DlqReason, ErrorCode, FailureKind, RejectCode

DOC = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()


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
