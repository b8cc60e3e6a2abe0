"""The message base class and the small Structs every family shares."""

from typing import Annotated

import msgspec

from natsfleet.protocols.errors import ErrorCode

#: The value of a `msgspec.Raw` field that carries nothing. msgspec cannot
#: decode `Raw | None` (it accepts only `null` there), so optional payloads
#: are `Raw` fields defaulting to this.
NULL_RAW = msgspec.Raw(b"null")


def is_null(raw: msgspec.Raw) -> bool:
    return bytes(raw).strip() in (b"", b"null")


def null_raw() -> msgspec.Raw:
    """JSON `null` as a Raw value: "no payload".

    msgspec cannot decode `Raw | None` (the union collapses to None), so
    optional payloads are `Raw` fields defaulting to this.
    """
    return msgspec.Raw(b"null")


class Message(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="type"):
    """Base of every wire message: frozen, keyword-only, tagged by `type`.

    Unknown fields are ignored on decode, so an older process reads a newer
    peer's message (additive evolution). Every field added later must have a
    default.
    """


class ErrorReply(Message, frozen=True, kw_only=True, tag="error"):
    """The answer to any request that could not be served."""

    code: ErrorCode
    detail: str
    retryable: bool = False


class PayloadRef(msgspec.Struct, frozen=True, kw_only=True):
    """A skill payload kept in the object store `<PREFIX>_BLOBS` instead of inline.

    A message or record carrying one has JSON `null` in the payload field
    itself; the bytes are the object `name` (`size_bytes` long). Payloads over
    the inline threshold travel this way (docs/protocol.md, "Payload sizes").
    """

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    size_bytes: Annotated[int, msgspec.Meta(ge=0)]


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What went wrong in an attempt or a task, as recorded and reported."""

    error_type: str
    detail: str = ""
    retryable: bool = True


class Usage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """LLM tokens and cost accumulated by an attempt, a task or a workflow."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            calls=self.calls + other.calls,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
        )
