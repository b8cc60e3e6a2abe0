"""Counters the bus keeps, for logs, metrics and tests."""

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class BusStats:
    published: int = 0
    received: int = 0
    slow_consumer_errors: int = 0
    handler_errors: int = 0
    disconnects: int = 0
    reconnects: int = 0
    blobs_offloaded: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
