"""How often a JetStream message may fail its handler before it is dead-lettered.

A handler that fails the same way for every delivery of a message would have
it redelivered without end (a traceback a second). So `Bus.consume` counts
each message's failures and, at `max_failures`, dead-letters it
(`handler_error`, with the last error) and terminates it. Only failures that
say something about the message count: an error marked `retryable` (lease
lost, backpressure) or a NATS error that means "unavailable right now"
(timeout, no responders, connection closed) says NATS or the fleet is
briefly unwell, so the message is nak'ed and waits, however long the outage.
A task accepted by TASKS is therefore never dead-lettered because NATS was
down; and a message is terminated only once its DLQ entry is stored (a failed
DLQ publish naks it again), so nothing leaves the stream unrecorded.

Counts live in the consuming process, keyed by stream sequence: a restarted
consumer counts again from zero, which costs at most `max_failures` more
deliveries per process. JetStream's own `max_deliver` is not used: at its
limit the server stops delivering a message but leaves it in the stream, and
it would count deliveries that failed only because NATS was unavailable.
"""

import nats.errors
import nats.js.errors

#: Non-transient handler failures of one message before it is dead-lettered.
DEFAULT_MAX_FAILURES = 5
#: Messages whose failures are remembered at once (oldest forgotten first).
_REMEMBERED = 10_000

_TRANSIENT: tuple[type[BaseException], ...] = (
    TimeoutError,
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.ServiceUnavailableError,
    ConnectionError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` says "try again later" rather than "this message is bad"."""
    return bool(getattr(exc, "retryable", False)) or isinstance(exc, _TRANSIENT)


class HandlerFailures:
    """Failures per message (stream sequence) of one consumer, bounded in memory."""

    __slots__ = ("_counts", "limit")

    def __init__(self, limit: int = DEFAULT_MAX_FAILURES) -> None:
        if limit < 1:
            raise ValueError(f"max_failures must be at least 1, not {limit}")
        self.limit = limit
        self._counts: dict[int, int] = {}

    def add(self, seq: int) -> int:
        """Count one more failure of message `seq`; how many it has now."""
        count = self._counts.pop(seq, 0) + 1
        self._counts[seq] = count
        if len(self._counts) > _REMEMBERED:
            del self._counts[next(iter(self._counts))]
        return count

    @staticmethod
    def delay_s(count: int) -> float:
        """Before the next delivery after `count` failures: 1, 2, 4 ... 30 s."""
        return float(min(2 ** min(count - 1, 5), 30))

    def forget(self, seq: int) -> None:
        self._counts.pop(seq, None)

    def __len__(self) -> int:
        return len(self._counts)
