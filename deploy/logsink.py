"""Prefixed, coloured log lines, one prefix per process (`researcher-1 | ...`)."""

import threading
import zlib
from typing import Protocol, TextIO

# Bright ANSI foreground colours; the process name picks one stably.
_COLOURS = (36, 32, 33, 35, 34, 96, 92, 93, 95, 94)
_RESET = "\x1b[0m"


class LineSink(Protocol):
    """Receives every output line of every child, and the launcher's own."""

    def __call__(self, name: str, line: str) -> None: ...


class PrefixedWriter:
    """Writes `name | line` to a text stream, colouring the name when asked."""

    def __init__(self, stream: TextIO, *, color: bool, width: int = 14) -> None:
        self._stream = stream
        self._color = color
        self.width = width
        # Lines come from the event loop and from logging handlers.
        self._lock = threading.Lock()

    def __call__(self, name: str, line: str) -> None:
        prefix = f"{name:<{self.width}} |"
        if self._color:
            colour = _COLOURS[zlib.crc32(name.encode()) % len(_COLOURS)]
            prefix = f"\x1b[{colour}m{prefix}{_RESET}"
        with self._lock:
            self._stream.write(f"{prefix} {line}\n")
            self._stream.flush()
