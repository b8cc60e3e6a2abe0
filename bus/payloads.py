"""The size rule for skill payloads (inputs and outputs).

A payload up to `inline_max_bytes` travels inline in its message and in every
record that embeds it (STATE, events, DLQ entries, workflow state). A bigger
one is stored once in the object store `<PREFIX>_BLOBS` and only a
`PayloadRef` travels; whoever needs the bytes reads them back. A payload over
`limit_bytes` (the blob limit, `BusConfig.max_message_bytes`) is refused:
`PayloadTooLarge`.

The inline threshold is a quarter of the server's max payload: a task record
embeds its input and its output at once, plus its attempt history, and must
still fit in one KV value (docs/protocol.md, "Payload sizes").
"""

import msgspec
from msgspec import structs

from natsfleet.bus.blobs import HEADER_ROOM_BYTES, BlobStore
from natsfleet.protocols import (
    NULL_RAW,
    ErrorInfo,
    Failure,
    FailureKind,
    NatsFleetError,
    PayloadRef,
    Result,
)

#: `ErrorInfo.error_type` / `Failure.error_type` of a payload over the blob limit.
TOO_LARGE = "too_large"

#: An error's text is recorded in every attempt of a task's record: cut to these.
MAX_ERROR_TYPE_CHARS = 200
MAX_ERROR_DETAIL_CHARS = 2_000

#: Inline threshold = the server's max payload // this.
INLINE_SHARE = 4


def inline_max_for(max_payload: int) -> int:
    """The inline threshold for a server with this max payload."""
    return max_payload // INLINE_SHARE


def bounded_error(error_type: str, detail: str, retryable: bool) -> ErrorInfo:
    """An `ErrorInfo` from text a peer sent, cut so records that embed it stay small."""
    if len(error_type) > MAX_ERROR_TYPE_CHARS:
        error_type = error_type[:MAX_ERROR_TYPE_CHARS] + "..."
    if len(detail) > MAX_ERROR_DETAIL_CHARS:
        detail = detail[:MAX_ERROR_DETAIL_CHARS] + "..."
    return ErrorInfo(error_type=error_type, detail=detail, retryable=retryable)


class PayloadTooLarge(NatsFleetError):
    """A payload over the blob limit: refused, never stored."""

    retryable = False

    def __init__(self, what: str, size_bytes: int, limit_bytes: int) -> None:
        self.what = what
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes
        super().__init__(f"{what} of {size_bytes} bytes is over the {limit_bytes}-byte blob limit")


class Payloads:
    """Offload and read back skill payloads by the size rule."""

    def __init__(
        self,
        blobs: BlobStore,
        *,
        inline_max_bytes: int,
        limit_bytes: int,
        record_max_bytes: int = 1024 * 1024 - HEADER_ROOM_BYTES,
    ) -> None:
        self.blobs = blobs
        self.inline_max_bytes = inline_max_bytes
        self.limit_bytes = limit_bytes
        # The largest KV value (a STATE or WORKFLOWS record) the server takes.
        self.record_max_bytes = record_max_bytes

    def check(self, what: str, size_bytes: int) -> None:
        """Raise `PayloadTooLarge` for a payload over the blob limit."""
        if size_bytes > self.limit_bytes:
            raise PayloadTooLarge(what, size_bytes, self.limit_bytes)

    async def offload(
        self, raw: msgspec.Raw, what: str, owner: str = ""
    ) -> tuple[msgspec.Raw, PayloadRef | None]:
        """`raw` as it should travel: itself, or null plus a reference to a blob.

        The blob is named `<owner>.<what>.<unique id>` (owner: a task id, or a
        task id and token), so an operator can tell whose it is.
        """
        size = len(raw)
        if size <= self.inline_max_bytes:
            return raw, None
        self.check(what, size)
        stored = await self.blobs.put(bytes(raw), f"{owner}.{what}." if owner else "")
        return NULL_RAW, PayloadRef(name=stored, size_bytes=size)

    async def discard(self, ref: PayloadRef | None) -> None:
        """Delete a referenced payload nothing will read (e.g. a stale result's)."""
        if ref is not None:
            await self.blobs.delete(ref.name)

    async def resolve(self, raw: msgspec.Raw, ref: PayloadRef | None) -> msgspec.Raw:
        """The payload's bytes; raises ProtocolError if the blob is gone or too big."""
        if ref is None:
            return raw
        return msgspec.Raw(await self.blobs.get(ref.name, self.limit_bytes))


async def offload_output(payloads: Payloads, result: Result) -> Result | Failure:
    """`result` with its output inline or referenced, or a non-retryable Failure."""
    try:
        if result.output_ref is not None:
            payloads.check("output", result.output_ref.size_bytes)
            # The reference wins; an inline output beside it is never stored.
            return structs.replace(result, output=NULL_RAW)
        owner = f"{result.task_id}.{result.token}"
        raw, ref = await payloads.offload(result.output, "output", owner)
    except PayloadTooLarge as exc:
        return Failure(
            task_id=result.task_id,
            token=result.token,
            attempt=result.attempt,
            instance_id=result.instance_id,
            agent=result.agent,
            kind=FailureKind.ERROR,
            error_type=TOO_LARGE,
            detail=str(exc),
            retryable=False,
            duration_ms=result.duration_ms,
            usage=result.usage,
        )
    if ref is None:
        return result
    return structs.replace(result, output=raw, output_ref=ref)
