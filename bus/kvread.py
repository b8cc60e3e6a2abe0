"""Reading a KV bucket: every key to its end (without trusting the watcher's marker)."""

from nats.js.kv import KeyValue


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
