"""Task ids (time-sortable, random) and fencing tokens."""

import os
import secrets
import time

# Crockford's base32: sortable as text, no ambiguous letters.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_task_id(now_ms: int | None = None) -> str:
    """A ULID: 48 bits of epoch milliseconds then 80 random bits, 26 characters."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_token() -> str:
    """A fresh 64-bit fencing token as 16 hex digits (text, so no JSON client rounds it)."""
    return secrets.token_hex(8)


def new_incarnation() -> str:
    """Random per process start: tells a restarted instance from the one before it."""
    return secrets.token_hex(6)
