"""Delivery of attempt outcomes to the RESULTS stream, retried until acknowledged.

Every outcome is a JetStream publish with `Nats-Msg-Id` = `<task>:<token>`, so
retrying after a lost acknowledgement (or across a server restart) cannot
store it twice; when several are ready at once (and tracing is off) they go as
one `OutcomeBatch` message. Outcomes wait here while NATS is away; the runtime keeps
their tokens in the heartbeat's `in_flight` until the stream has them.
"""

import asyncio
import contextvars
import logging
from collections.abc import Callable, Iterable

from natsfleet.bus import Bus
from natsfleet.process.loop import wait_event
from natsfleet.protocols import AttemptOutcome, OutcomeBatch, Result
from natsfleet.telemetry import tracing

log = logging.getLogger(__name__)

_BATCH = 64
# An OutcomeBatch stays far below any server's max payload and the readers'
# size limit; an outcome bigger than this goes alone (blob offload applies).
_BATCH_BYTES = 256 * 1024
_OVERHEAD_BYTES = 400  # ids, token, usage, field names
_PUBLISH_TIMEOUT_S = 2.0
_FIRST_BACKOFF_S = 0.05
_MAX_BACKOFF_S = 1.0


class Outbox:
    """Holds outcomes until the stream acknowledges them; one per token, ever."""

    def __init__(self, bus: Bus, subject: str, on_acked: Callable[[str], None]) -> None:
        self._bus = bus
        self._subject = subject
        self._on_acked = on_acked
        self._pending: dict[str, AttemptOutcome] = {}
        # The context each outcome was made in: its publish joins that trace.
        self._contexts: dict[str, contextvars.Context] = {}
        self._seen: set[str] = set()
        self._warned: set[str] = set()
        self._more = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()

    def __len__(self) -> int:
        return len(self._pending)

    def pending_tokens(self) -> list[str]:
        return list(self._pending)

    def put(self, outcome: AttemptOutcome, context: contextvars.Context | None = None) -> bool:
        """Queue the outcome of `outcome.token`; False if that token already has one."""
        if outcome.token in self._seen:
            return False
        self._seen.add(outcome.token)
        self._pending[outcome.token] = outcome
        if context is not None:
            self._contexts[outcome.token] = context
        self._empty.clear()
        self._more.set()
        return True

    def forget(self, token: str) -> None:
        """Drop the memory of a token long gone (bounds `_seen`)."""
        if token not in self._pending:
            self._seen.discard(token)

    async def wait_empty(self, timeout_s: float) -> bool:
        """True once everything queued was acknowledged, False if time ran out first."""
        return await wait_event(self._empty, timeout_s)

    async def run(self) -> None:
        backoff_s = _FIRST_BACKOFF_S
        while True:
            await self._more.wait()
            self._more.clear()
            batch = _first_batch(self._pending.values())
            if not tracing.enabled():
                one = len(batch) == 1
                results = [await (self._publish(batch[0]) if one else self._publish_batch(batch))]
            else:
                # Traced, each outcome's publish joins its own attempt's trace.
                results = await asyncio.gather(
                    *(
                        asyncio.create_task(self._publish(o), context=self._contexts.get(o.token))
                        for o in batch
                    )
                )
            if len(self._pending) > 0:
                self._more.set()
            else:
                self._empty.set()
            if all(results):
                backoff_s = _FIRST_BACKOFF_S
                continue
            # NATS is away or JetStream not ready yet: retry the same outcomes.
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, _MAX_BACKOFF_S)

    async def _publish_batch(self, batch: list[AttemptOutcome]) -> bool:
        """Several outcomes in one RESULTS message (`OutcomeBatch`), one stream ack.

        A retried batch may be grouped differently and be stored twice: the
        supervisor records one outcome per token either way.
        """
        first = batch[0]
        msg_id = f"batch:{first.task_id}:{first.token}:{len(batch)}"
        return await self._store(OutcomeBatch(outcomes=tuple(batch)), msg_id, batch)

    async def _publish(self, outcome: AttemptOutcome) -> bool:
        return await self._store(outcome, f"{outcome.task_id}:{outcome.token}", [outcome])

    async def _store(
        self, message: AttemptOutcome | OutcomeBatch, msg_id: str, outcomes: list[AttemptOutcome]
    ) -> bool:
        """Publish `message` (carrying `outcomes`); True once the stream has it."""
        first = outcomes[0]
        try:
            await self._bus.publish_js(
                self._subject, message, msg_id=msg_id, timeout_s=_PUBLISH_TIMEOUT_S
            )
        except Exception as exc:  # any failure: keep them and try again
            # One warning per outcome; the retries of a long outage stay at debug.
            level = logging.DEBUG if first.token in self._warned else logging.WARNING
            self._warned.add(first.token)
            log.log(
                level,
                "outcome of %s not yet stored (%s: %s); retrying",
                msg_id,
                type(exc).__name__,
                exc,
                extra={"task_id": first.task_id, "token": first.token},
            )
            return False
        tokens = {outcome.token for outcome in outcomes}
        if tokens & self._warned:  # (a retried batch may be grouped differently)
            self._warned -= tokens
            log.info("outcome of %s stored after retrying", msg_id)
        for outcome in outcomes:
            self._pending.pop(outcome.token, None)
            self._contexts.pop(outcome.token, None)
            self._on_acked(outcome.token)
        return True


def _size(outcome: AttemptOutcome) -> int:
    body = len(outcome.output) if isinstance(outcome, Result) else len(outcome.detail)
    return body + _OVERHEAD_BYTES


def _first_batch(pending: Iterable[AttemptOutcome]) -> list[AttemptOutcome]:
    """The oldest outcomes, at most `_BATCH` of them and about `_BATCH_BYTES` (at least one)."""
    batch: list[AttemptOutcome] = []
    total = 0
    for outcome in pending:
        size = _size(outcome)
        if batch and (len(batch) == _BATCH or total + size > _BATCH_BYTES):
            break
        batch.append(outcome)
        total += size
    return batch
