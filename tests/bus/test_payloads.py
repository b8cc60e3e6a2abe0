"""The size rule's building blocks against a real server (1 MiB max payload)."""

import msgspec
import pytest

from natsfleet.bus import Bus
from natsfleet.bus.payloads import PayloadTooLarge, bounded_error, offload_output
from natsfleet.protocols import (
    NULL_RAW,
    DlqReason,
    Failure,
    PayloadRef,
    ProtocolError,
    Result,
    to_raw,
)


def _result(output: msgspec.Raw, ref: PayloadRef | None = None) -> Result:
    return Result(
        task_id="t1", token="k1", attempt=1, instance_id="i", agent="a", output=output,
        output_ref=ref,
    )  # fmt: skip


async def test_threshold_offload_resolve_and_limit(bus: Bus) -> None:
    payloads = bus.payloads
    assert payloads.inline_max_bytes == 256 * 1024
    assert payloads.limit_bytes == bus.config.max_message_bytes
    small = to_raw("s" * 1000)
    assert await payloads.offload(small, "input") == (small, None)
    at_threshold = msgspec.Raw(b"1" * payloads.inline_max_bytes)
    assert (await payloads.offload(at_threshold, "input"))[1] is None
    big = to_raw("b" * (payloads.inline_max_bytes + 1))
    raw, ref = await payloads.offload(big, "input", "t1")
    assert bytes(raw) == b"null" and ref is not None and ref.size_bytes == len(big)
    assert ref.name.startswith("t1.input.")
    # The same owner twice: two blobs, the first never replaced.
    _, again = await payloads.offload(to_raw("c" * len(big)), "input", "t1")
    assert again is not None and again.name != ref.name
    assert bytes(await payloads.resolve(raw, ref)) == bytes(big)
    with pytest.raises(PayloadTooLarge) as caught:
        payloads.check("input", payloads.limit_bytes + 1)
    assert not caught.value.retryable
    await payloads.discard(ref)
    with pytest.raises(ProtocolError) as missing:
        await payloads.resolve(raw, ref)
    assert missing.value.reason == DlqReason.BLOB_MISSING


async def test_offload_output(bus: Bus) -> None:
    payloads = bus.payloads
    assert await offload_output(payloads, _result(to_raw(1))) == _result(to_raw(1))
    moved = await offload_output(payloads, _result(to_raw("o" * 300_000)))
    assert isinstance(moved, Result) and moved.output_ref is not None
    assert moved.output_ref.name.startswith("t1.k1.output.") and bytes(moved.output) == b"null"
    # A reference wins: an inline output beside it is dropped.
    both = await offload_output(payloads, _result(to_raw("x" * 300_000), moved.output_ref))
    assert isinstance(both, Result) and bytes(both.output) == bytes(NULL_RAW)
    over = PayloadRef(name="t1.k1.output.x", size_bytes=payloads.limit_bytes + 1)
    refused = await offload_output(payloads, _result(NULL_RAW, over))
    assert isinstance(refused, Failure)
    assert refused.error_type == "too_large" and not refused.retryable


def test_payload_ref_is_checked_on_decode() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"name":"a","size_bytes":-1}', type=PayloadRef)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"name":"","size_bytes":1}', type=PayloadRef)


def test_bounded_error() -> None:
    error = bounded_error("T" * 10_000, "d" * 10_000, retryable=True)
    assert len(error.error_type) <= 203 and len(error.detail) <= 2_003 and error.retryable
