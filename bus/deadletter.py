"""Dead-lettering: wrap a message that cannot be handled and keep it in DLQ."""

import logging
import time

from nats.js import JetStreamContext

from natsfleet.bus.incoming import normalized
from natsfleet.protocols import (
    MSG_ID_HEADER,
    VERSION,
    VERSION_HEADER,
    AttemptRecord,
    DeadLetter,
    DlqReason,
    ErrorCode,
    Subjects,
    encode,
)
from natsfleet.telemetry.redact import redact, redact_bytes, redact_mapping

log = logging.getLogger(__name__)

# A DLQ entry must itself fit in one message; the rest of a huge payload is cut.
MAX_KEPT_PAYLOAD_BYTES = 256 * 1024
MAX_ERROR_CHARS = 4096
# Per header value: a hostile 500 KB `Nats-Msg-Id` must not make the entry too big to store.
MAX_KEPT_HEADER_CHARS = 4096

#: The error code a requester gets for each way a message can be malformed.
REPLY_CODE: dict[DlqReason, ErrorCode] = {
    DlqReason.DECODE_ERROR: ErrorCode.BAD_REQUEST,
    DlqReason.UNKNOWN_TYPE: ErrorCode.UNKNOWN_TYPE,
    DlqReason.UNSUPPORTED_VERSION: ErrorCode.UNSUPPORTED_VERSION,
    DlqReason.TOO_LARGE: ErrorCode.TOO_LARGE,
    DlqReason.BLOB_MISSING: ErrorCode.BAD_REQUEST,
    DlqReason.BAD_INPUT: ErrorCode.BAD_REQUEST,
    DlqReason.UNKNOWN_SKILL: ErrorCode.UNKNOWN_SKILL,
    DlqReason.HANDLER_ERROR: ErrorCode.INTERNAL,
}


def build_entry(
    *,
    reason: DlqReason,
    subject: str,
    error: str,
    headers: dict[str, str] | None = None,
    payload: bytes = b"",
    source: str = "",
    task_id: str | None = None,
    attempts: tuple[AttemptRecord, ...] = (),
) -> DeadLetter:
    """A DLQ entry; secrets are redacted from its error, headers and payload."""
    if len(error) > MAX_ERROR_CHARS:  # e.g. an exception quoting a huge hostile id
        error = f"{error[:MAX_ERROR_CHARS]}... ({len(error)} characters)"
    kept = payload
    if len(payload) > MAX_KEPT_PAYLOAD_BYTES:
        kept = payload[:MAX_KEPT_PAYLOAD_BYTES]
        error = f"{error} (payload of {len(payload)} bytes cut to {MAX_KEPT_PAYLOAD_BYTES})"
    return DeadLetter(
        reason=reason,
        subject=subject,
        error=redact(error),
        at_ms=int(time.time() * 1000),
        headers=redact_mapping(_cut_headers(normalized(headers))),
        payload=redact_bytes(kept),
        source=source,
        task_id=task_id,
        attempts=attempts,
    )


def _cut_headers(headers: dict[str, str]) -> dict[str, str]:
    if all(len(value) <= MAX_KEPT_HEADER_CHARS for value in headers.values()):
        return headers
    return {
        name: value
        if len(value) <= MAX_KEPT_HEADER_CHARS
        else f"{value[:MAX_KEPT_HEADER_CHARS]}... ({len(value)} characters)"
        for name, value in headers.items()
    }


async def publish_entry(
    js: JetStreamContext,
    subjects: Subjects,
    entry: DeadLetter,
    timeout_s: float,
    *,
    msg_id: str | None = None,
) -> bool:
    """Store `entry` in the DLQ stream; False (and a log line) if that failed.

    The wrapper is published with only our version header: never the original
    message's headers, which could dedupe or reject it.
    """
    headers = {VERSION_HEADER: str(VERSION)}
    if msg_id is not None:
        headers[MSG_ID_HEADER] = msg_id
    try:
        await js.publish(
            subjects.dlq(entry.reason.value), encode(entry), timeout=timeout_s, headers=headers
        )
    except Exception as exc:  # a DLQ failure must not take the subscriber down
        log.error(
            "could not dead-letter message from %s (%s): %s: %s",
            entry.subject,
            entry.reason.value,
            type(exc).__name__,
            exc,
        )
        return False
    return True
