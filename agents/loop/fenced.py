"""One fenced append to a KV-backed log: what the journal and sessions share.

A log is every key under one subject filter of a KV bucket's stream (a task's
journal, a session). A writer appends only on top of the last write it knows
of: the publish carries `Nats-Expected-Last-Subject-Sequence` for the filter,
so the server refuses it if anyone wrote since (`FencedOut`). A publish whose
ack was lost is looked up: if our own entry (same subject, token and bytes) is
the log's last, it stood; if someone else's is, we were fenced.
"""

from typing import Any

import nats.errors
from nats.js import JetStreamContext
from nats.js import errors as js_errors

EXPECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
EXPECT_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"
TOKEN_HEADER = "Natsfleet-Journal-Token"  # noqa: S105 (a header name, no secret)

#: JetStream's "wrong last sequence" error code (JSStreamWrongLastSequenceErrF).
WRONG_LAST_SEQUENCE = 10071
_WRITE_TRIES = 3


class FencedOut(Exception):
    """Someone else wrote to the log since this writer's last write."""


class FencedLog:
    """The stream and filter of one log, written under one writer's token."""

    def __init__(
        self, js: JetStreamContext, stream: str, filter_subject: str, token: str, timeout_s: float
    ) -> None:
        self.js = js
        self.stream = stream
        self.filter = filter_subject
        self.token = token
        self.timeout_s = timeout_s

    async def append(self, subject: str, data: bytes, last_seq: int) -> int | None:
        """Publish `data` on `subject` on top of `last_seq`; its stream sequence, or
        None if it was never acknowledged. Raises `FencedOut`, or the stream's
        `APIError` for any other refusal."""
        headers = {EXPECT_SEQ: str(last_seq), EXPECT_SUBJECT: self.filter, TOKEN_HEADER: self.token}
        for _ in range(_WRITE_TRIES):
            try:
                ack = await self.js.publish(subject, data, headers=headers, timeout=self.timeout_s)
            except js_errors.APIError as exc:
                if exc.err_code == WRONG_LAST_SEQUENCE:
                    raise FencedOut() from None
                raise
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError, TimeoutError):
                seq = await self.landed(subject, data, last_seq)
                if seq is None:
                    continue
                return seq
            return int(ack.seq)
        return None

    async def landed(self, subject: str, data: bytes, last_seq: int) -> int | None:
        """The sequence of our write if it is the log's last entry (its ack was lost)."""
        try:
            msg = await self.js.get_last_msg(self.stream, self.filter)
        except (js_errors.Error, nats.errors.Error, TimeoutError):
            return None
        headers: dict[str, Any] = dict(msg.headers or {})
        if msg.subject == subject and headers.get(TOKEN_HEADER) == self.token and msg.data == data:
            return int(msg.seq or 0)
        if msg.seq is not None and msg.seq > last_seq:
            raise FencedOut()  # someone else's write is last: we were fenced
        return None
