"""msgspec JSON encoding and strict, classified decoding.

Encoders and decoders are built once per type and reused; decoding happens
only at the bus boundary, and every failure is a `ProtocolError` carrying the
dead-letter reason.
"""

from typing import Any, Generic, TypeVar

import msgspec

from natsfleet.protocols.errors import DlqReason, ProtocolError

T = TypeVar("T")

_ENCODER = msgspec.json.Encoder()


def encode(message: Any) -> bytes:
    """Encode a Struct (or any msgspec-supported value) as JSON."""
    return _ENCODER.encode(message)


def _classify(error: msgspec.ValidationError) -> DlqReason:
    # msgspec reports an unknown tag as an invalid value at the tag field.
    text = str(error)
    if text.startswith("Invalid value") and text.endswith("`$.type`"):
        return DlqReason.UNKNOWN_TYPE
    return DlqReason.DECODE_ERROR


class Codec(Generic[T]):
    """A reusable strict decoder for one type or tagged union."""

    __slots__ = ("_decoder", "type")

    def __init__(self, type_: Any) -> None:
        self.type = type_
        self._decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(type_)

    def decode(self, data: bytes | bytearray | memoryview) -> T:
        try:
            return self._decoder.decode(data)
        except msgspec.ValidationError as exc:
            raise ProtocolError(_classify(exc), str(exc)) from None
        except msgspec.DecodeError as exc:
            raise ProtocolError(DlqReason.DECODE_ERROR, str(exc)) from None
        except RecursionError:
            raise ProtocolError(DlqReason.DECODE_ERROR, "JSON nested too deeply") from None
        except UnicodeDecodeError as exc:
            # msgspec raises this (not DecodeError) for invalid UTF-8 inside a
            # tag or string; found by tests/security/test_hostile.py.
            raise ProtocolError(DlqReason.DECODE_ERROR, f"invalid UTF-8: {exc.reason}") from None


def decode_raw(raw: msgspec.Raw, type_: type[T]) -> T:
    """Decode a payload carried as `msgspec.Raw` into the skill's own type."""
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        raise ProtocolError(DlqReason.BAD_INPUT, str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(DlqReason.DECODE_ERROR, str(exc)) from None
    except UnicodeDecodeError as exc:
        raise ProtocolError(DlqReason.DECODE_ERROR, f"invalid UTF-8: {exc.reason}") from None


def to_raw(value: Any) -> msgspec.Raw:
    """Encode a value for a `msgspec.Raw` field."""
    return msgspec.Raw(_ENCODER.encode(value))


def integral_numbers(value: Any) -> Any:
    """`value` with every float that holds a whole number as an int again.

    JSON that crossed a format keeping all numbers as doubles (protobuf's
    `Value`, which A2A data parts use) turns 3 into 3.0; a skill whose input
    field is an int would then refuse it. Beyond 2**53 a double is not exact,
    so such floats stay floats."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [integral_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: integral_numbers(v) for k, v in value.items()}
    return value
