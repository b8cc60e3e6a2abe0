"""Reading a KV bucket: every key to its end (without trusting the watcher's marker),
or the most recently written keys."""

import nats.errors
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.kv import KeyValue

_OPERATION = "KV-Operation"
_MARKER = "Nats-Marker-Reason"


async def latest_entries(kv: KeyValue, timeout_s: float = 5.0) -> list[KeyValue.Entry]:
    """The latest entry of every key (delete markers included), in stream order.

    The read ends at the bucket stream's last sequence as it was when the
    read started, not at the watcher's "initial values done" marker: nats.py
    can send that marker before the replay has arrived (nats-io/nats.py#842;
    the consumer info says nothing is pending once everything is in flight),
    and a supervisor taking over on a 3-node cluster then saw an empty STATE
    and left every unfinished task stranded.

    Raises:
        nats.errors.TimeoutError: no entry for `timeout_s` before the end.
    """
    state = (await kv.status()).stream_info.state
    if not state.messages:
        return []
    last = state.last_seq
    entries: list[KeyValue.Entry] = []
    watcher = await kv.watchall()
    try:
        while True:
            entry = await watcher.updates(timeout=timeout_s)  # type: ignore[no-untyped-call]
            if entry is None:  # the marker: possibly early, so read on to `last`
                continue
            entries.append(entry)
            # `delta` (the consumer's pending count at delivery) ends the read
            # too: the stream's last message may have expired (per-message TTL).
            if (entry.revision or 0) >= last or entry.delta == 0:
                return entries
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]


async def recent_values(
    js: JetStreamContext, kv: KeyValue, count: int, timeout_s: float = 5.0
) -> list[tuple[str, bytes]]:
    """(key, value) of the newest `count` messages of the bucket, oldest first.

    With `history=1` every message left in a bucket's stream is the latest
    value of its key, so these are the most recently written keys; deletes
    and expiry markers are skipped. One ordered consumer, not one get per key.
    """
    status = await kv.status()
    info = status.stream_info
    state = info.state
    if not state.messages or count <= 0:
        return []
    start = max(state.first_seq, state.last_seq - count + 1)
    prefix = f"$KV.{status.bucket}."
    sub = await js.subscribe(
        f"{prefix}>",
        stream=info.config.name,
        ordered_consumer=True,
        config=js_api.ConsumerConfig(
            deliver_policy=js_api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start
        ),
    )
    found: list[tuple[str, bytes]] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=timeout_s)
            except (nats.errors.TimeoutError, TimeoutError):
                return found  # the newest ones expired (per-message TTL) meanwhile
            headers = msg.headers or {}
            if msg.data and _OPERATION not in headers and _MARKER not in headers:
                found.append((msg.subject[len(prefix) :], msg.data))
            meta = msg.metadata
            if meta.sequence.stream >= state.last_seq or meta.num_pending == 0:
                return found
    finally:
        await sub.unsubscribe()
