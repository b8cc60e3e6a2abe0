"""The one rule for identifiers and numbers that come from the wire.

Every string that becomes a subject token, a KV key or a header (task ids,
tokens, instance ids, agent and workflow names) is an `Id`, a skill a
`Name` (an id that may hold dots); an
idempotency key (hashed before it reaches KV) is a `Key`; durations, money,
priorities and counts have ranges. The types below carry the rule as
`msgspec.Meta` constraints, so decoding itself rejects a message that breaks
it (a `ProtocolError`, then a DLQ entry); `check_id`, `check_key` and
`check_struct` apply the same rule to values made in this process (the
client checks a Submit before publishing it). docs/protocol.md,
"Identifiers and limits", is the reader's copy of this module.

Why these bounds: an id must be usable as one NATS subject token and as a
KV key (`[A-Za-z0-9_-]` is in both alphabets; `.`, `*`, `>`, spaces and control
characters are not), and several ids plus the prefix must fit in one
protocol line (nats-server closes a connection whose control line exceeds
4 KiB). Numbers are bounded so every deadline in milliseconds stays an
integer msgspec can encode (1e308 s once overflowed converting to ms).
"""

from typing import Annotated, TypeVar

import msgspec

from natsfleet.protocols.errors import NatsFleetError

#: Longest id. Ids natsfleet makes are far shorter (ULIDs: 26, tokens: 16).
ID_MAX_CHARS = 128
# `$` alone also matches before a final newline in Python's `re` (which
# msgspec uses); the lookahead pins it to the very end and is still valid
# ECMA-262, the JSON Schema pattern dialect.
ID_PATTERN = r"^[A-Za-z0-9_-]+(?!\n)$"
#: Skill names may also hold dots (`later.skill`): they never become a subject token.
NAME_PATTERN = r"^[A-Za-z0-9_.-]+(?!\n)$"
#: Longest idempotency key. It is hashed for KV, so any text but control characters.
KEY_MAX_CHARS = 1024
KEY_PATTERN = r"^[^\x00-\x1f\x7f]+(?!\n)$"
#: Short free-form labels (error types, host names, versions, client names).
LABEL_MAX_CHARS = 256
#: Longest duration on the wire: a year.
MAX_DURATION_S = 366 * 86_400.0
MAX_DURATION_MS = int(MAX_DURATION_S * 1000)
#: Epoch milliseconds: the 48 bits a ULID's time holds.
MAX_EPOCH_MS = 2**48 - 1
MAX_BUDGET_USD = 1_000_000.0
PRIORITY_MIN, PRIORITY_MAX = 0, 2**31 - 1  # 0, the default, is the lowest
#: Counts (attempts, capacity, load, sequence numbers).
MAX_COUNT = 2**31 - 1
MAX_BACKOFF_COEFFICIENT = 100.0

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=ID_MAX_CHARS, pattern=ID_PATTERN)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=ID_MAX_CHARS, pattern=NAME_PATTERN)]
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=KEY_MAX_CHARS, pattern=KEY_PATTERN)]
Label = Annotated[str, msgspec.Meta(max_length=LABEL_MAX_CHARS)]
Seconds = Annotated[float, msgspec.Meta(ge=0, le=MAX_DURATION_S)]
Millis = Annotated[int, msgspec.Meta(ge=0, le=MAX_DURATION_MS)]
EpochMs = Annotated[int, msgspec.Meta(ge=0, le=MAX_EPOCH_MS)]
Usd = Annotated[float, msgspec.Meta(ge=0, le=MAX_BUDGET_USD)]
Priority = Annotated[int, msgspec.Meta(ge=PRIORITY_MIN, le=PRIORITY_MAX)]
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]
#: Sequence numbers only grow (a heartbeat every 10 ms passes 2**31 in 8 months).
Seq = Annotated[int, msgspec.Meta(ge=0)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]
Coefficient = Annotated[float, msgspec.Meta(ge=1, le=MAX_BACKOFF_COEFFICIENT)]

T = TypeVar("T")

_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class InvalidValue(NatsFleetError, ValueError):
    """A value breaks the rule for its field; nothing was sent."""

    def __init__(self, what: str, detail: str) -> None:
        self.what = what
        self.detail = detail
        super().__init__(f"invalid {what}: {detail}")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def is_id(value: object) -> bool:
    """Whether `value` passes the id rule."""
    return isinstance(value, str) and 0 < len(value) <= ID_MAX_CHARS and _ID_CHARS.issuperset(value)


def check_id(value: str, what: str = "id") -> str:
    """`value` if it is a valid id, else `InvalidValue`."""
    if not is_id(value):
        rule = f"1 to {ID_MAX_CHARS} characters of A-Z a-z 0-9 _ -"
        raise InvalidValue(what, f"{_shown(value)} is not {rule}")
    return value


def is_name(value: object) -> bool:
    """Whether `value` passes the skill-name rule (an id that may hold dots)."""
    return isinstance(value, str) and is_id(value.replace(".", "_"))


def check_name(value: str, what: str = "skill name") -> str:
    """`value` if it is a valid skill name, else `InvalidValue`."""
    if not is_name(value):
        rule = f"1 to {ID_MAX_CHARS} characters of A-Z a-z 0-9 _ - ."
        raise InvalidValue(what, f"{_shown(value)} is not {rule}")
    return value


def check_key(value: str, what: str = "idempotency key") -> str:
    """`value` if it is a valid idempotency key, else `InvalidValue`."""
    if not (0 < len(value) <= KEY_MAX_CHARS) or any(c < " " or c == "\x7f" for c in value):
        rule = f"1 to {KEY_MAX_CHARS} characters without control characters"
        raise InvalidValue(what, f"{_shown(value)} is not {rule}")
    return value


def check_struct(value: T, what: str = "message") -> T:
    """`value` if it would pass decoding as its own type, else `InvalidValue`.

    The receiver's constraints, checked by a round trip: msgspec checks `Meta`
    constraints when decoding, not when a Struct is constructed.
    """
    try:
        msgspec.json.decode(_ENCODER.encode(value), type=type(value))
    except msgspec.ValidationError as exc:
        raise InvalidValue(what, str(exc)) from None
    return value


_ENCODER = msgspec.json.Encoder()
