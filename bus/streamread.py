"""Reading a bounded run of a stream's messages from a sequence number.

Listings of big streams (the DLQ, KV STATE) read one page at a time: an
ephemeral pull consumer starting at `start_seq`, one `no_wait` fetch of at
most `count` messages, then the consumer is deleted. The server skips deleted
sequence numbers itself, nothing beyond `count` is sent, and the cost does
not grow with the stream's length (a push consumer would keep sending past
the page until unsubscribed; one `get_msg` per sequence is a round trip each).
"""

import contextlib
import secrets

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js import errors as js_errors

#: The server forgets the consumer this long after its last use, if the delete is lost.
_INACTIVE_S = 30.0


async def read_from(
    js: JetStreamContext,
    stream: str,
    subjects: str,
    start_seq: int,
    count: int,
    timeout_s: float = 5.0,
) -> list[Msg]:
    """Up to `count` messages of `stream` on `subjects` with sequence >= `start_seq`,
    in sequence order (fewer when the stream ends first)."""
    if count <= 0:
        return []
    name = f"read-{secrets.token_hex(8)}"
    config = js_api.ConsumerConfig(
        name=name,
        filter_subject=subjects,
        deliver_policy=js_api.DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=max(1, start_seq),
        ack_policy=js_api.AckPolicy.NONE,
        inactive_threshold=_INACTIVE_S,
        mem_storage=True,
        num_replicas=1,
    )
    await js.add_consumer(stream, config=config)
    try:
        sub = await js.pull_subscribe_bind(name, stream=stream)
        try:
            return await sub.fetch(count, timeout=timeout_s)
        except (nats.errors.TimeoutError, TimeoutError):
            return []  # nothing at or after start_seq
        finally:
            await sub.unsubscribe()
    finally:
        with contextlib.suppress(js_errors.Error, nats.errors.Error):
            await js.delete_consumer(stream, name)
