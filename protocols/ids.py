"""Task ids (time-sortable, random) and fencing tokens."""

import os
import secrets
import threading
import time

# Crockford's base32: sortable as text, no ambiguous letters.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]
_SHIFTS = range(120, -1, -10)


class _RandomPool:
    """`os.urandom` bytes read 4 KiB at a time: the same randomness without a
    system call per id (a supervisor makes a token per attempt, a client an
    id per task). A forked child starts with an empty pool, never its parent's."""

    __slots__ = ("_buf", "_lock", "_pos")

    def __init__(self) -> None:
        self._lock = threading.Lock()  # threads must never share bytes
        self.clear()

    def clear(self) -> None:
        self._lock = threading.Lock()  # a forked child may inherit it held
        self._buf = b""
        self._pos = 0

    def take(self, n: int) -> bytes:
        with self._lock:
            pos, end = self._pos, self._pos + n
            if end > len(self._buf):
                self._buf = os.urandom(4096)
                pos, end = 0, n
            self._pos = end
            return self._buf[pos:end]


_random = _RandomPool()
os.register_at_fork(after_in_child=_random.clear)


def new_task_id(now_ms: int | None = None) -> str:
    """A ULID: 48 bits of epoch milliseconds then 80 random bits, 26 characters."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(_random.take(10), "big")
    # 26 characters = 13 pairs of 10 bits, each pair one table lookup.
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def new_token() -> str:
    """A fresh 64-bit fencing token as 16 hex digits (text, so no JSON client rounds it)."""
    return _random.take(8).hex()


def new_incarnation() -> str:
    """Random per process start: tells a restarted instance from the one before it."""
    return secrets.token_hex(6)
