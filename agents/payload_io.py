"""An attempt's payloads kept in BLOBS: reading the input, storing the output.

The size rule is docs/protocol.md's "Payload sizes" (bus/payloads.py). A
referenced input is read after the Accept, not in the assign handler: a big
blob takes longer than the supervisor waits for an answer.
"""

import logging

from msgspec import structs

from natsfleet.agents.attempt import Attempt
from natsfleet.bus import Bus
from natsfleet.bus.payloads import offload_output
from natsfleet.protocols import (
    AttemptOutcome,
    DlqReason,
    Failure,
    FailureKind,
    ProtocolError,
    Result,
    encode,
)

log = logging.getLogger(__name__)

# Dead-letter reasons a referenced input keeps as they are (else bad_input).
_BLOB_REASONS = frozenset({DlqReason.BLOB_MISSING, DlqReason.TOO_LARGE})


async def read_input(bus: Bus, attempt: Attempt, subject: str) -> Failure | None:
    """Read and decode a referenced input into `attempt.value`; a Failure if it
    cannot be (a missing, oversized or undecodable one is `bad_input`, with a
    DLQ entry). `subject` is where the Assign came (for the DLQ entry)."""
    assign = attempt.assign
    if assign.input_ref is None:
        return None
    try:
        raw = await bus.payloads.resolve(assign.input, assign.input_ref)
        attempt.value = attempt.skill.decode_input(raw)
        return None
    except ProtocolError as err:
        reason = err.reason if err.reason in _BLOB_REASONS else DlqReason.BAD_INPUT
        try:
            await bus.dead_letter(
                reason,
                subject=subject,
                error=err.detail,
                payload=encode(assign),
                task_id=assign.task_id,
            )
        except Exception as exc:  # the outcome must still be reported
            log.warning("dead letter for %s not written: %s", assign.task_id, exc)
        return attempt.failure(FailureKind.BAD_INPUT, "bad_input", err.detail, retryable=False)
    except Exception as exc:  # the blob store is unreachable: let another try
        detail = f"input not read: {type(exc).__name__}: {exc}"
        return attempt.failure(FailureKind.ERROR, "blob_store", detail, retryable=True)


async def offloaded(bus: Bus, attempt: Attempt, result: Result) -> AttemptOutcome:
    """The result with a big output in BLOBS; over the blob limit, a
    non-retryable `too_large` Failure."""
    try:
        return await offload_output(bus.payloads, result)
    except Exception as exc:  # the blob store is unreachable: let another try
        log.warning("task %s: output not stored in BLOBS: %s", attempt.task_id, exc)
        failure = attempt.failure(
            FailureKind.ERROR, "blob_store", f"output not stored: {exc}", retryable=True
        )
        return structs.replace(failure, usage=result.usage)
