"""Hypothesis strategies built from msgspec's own type information.

Deriving them from the Structs means a new message or field is covered by
the round-trip tests without anyone writing a strategy for it.
"""

from typing import Any

import msgspec
import msgspec.inspect as mi
from hypothesis import strategies as st

from natsfleet.protocols.limits import ID_PATTERN, KEY_PATTERN, NAME_PATTERN

# The alphabets of protocols/limits.py's patterns (hypothesis cannot generate
# from their end-of-text lookahead).
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_ALPHABETS: dict[str, st.SearchStrategy[str]] = {
    ID_PATTERN: st.sampled_from(_ID_ALPHABET),
    NAME_PATTERN: st.sampled_from(_ID_ALPHABET + "."),
    KEY_PATTERN: st.characters(
        min_codepoint=0x20, exclude_categories=("Cs",), exclude_characters="\x7f"
    ),
}

_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.text(max_size=12),
)
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def for_type(t: mi.Type) -> st.SearchStrategy[Any]:  # noqa: C901 - one case per msgspec type
    match t:
        case mi.StrType():
            return _text(t)
        case mi.BoolType():
            return st.booleans()
        case mi.IntType():  # within the field's msgspec.Meta bounds
            low = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else -(2**53))
            high = t.le if t.le is not None else (t.lt - 1 if t.lt is not None else 2**53)
            low, high = max(low, -(2**53)), min(high, 2**53)
            return st.integers(min_value=low, max_value=high)
        case mi.FloatType():
            return st.floats(min_value=t.ge, max_value=t.le, allow_nan=False, allow_infinity=False)
        case mi.NoneType():
            return st.none()
        case mi.BytesType():
            return st.binary(max_size=32)
        case mi.RawType():
            # A top-level JSON null in `Raw | None` decodes as None, by design.
            return _JSON_VALUES.filter(lambda v: v is not None).map(
                lambda v: msgspec.Raw(msgspec.json.encode(v))
            )
        case mi.AnyType():
            return _JSON_VALUES
        case mi.EnumType():
            return st.sampled_from(list(t.cls))
        case mi.LiteralType():
            return st.sampled_from(list(t.values))
        case mi.UnionType():
            return st.one_of([for_type(member) for member in t.types])
        case mi.VarTupleType() | mi.ListType():
            return st.lists(for_type(t.item_type), max_size=min(3, t.max_length or 3)).map(tuple)
        case mi.DictType():
            return st.dictionaries(for_type(t.key_type), for_type(t.value_type), max_size=3)
        case mi.StructType():
            return struct_strategy(t.cls)
    raise NotImplementedError(f"no strategy for {t!r}")


def _text(t: mi.StrType) -> st.SearchStrategy[str]:
    low = t.min_length or 0
    high = max(low, min(24, t.max_length or 24))
    if t.pattern is None:
        return st.text(min_size=low, max_size=high)
    if t.pattern not in _ALPHABETS:
        raise NotImplementedError(f"no strategy for the pattern {t.pattern!r}")
    return st.text(_ALPHABETS[t.pattern], min_size=max(low, 1), max_size=high)


def struct_strategy(cls: type[Any]) -> st.SearchStrategy[Any]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return st.builds(cls, **{field.name: for_type(field.type) for field in info.fields})
