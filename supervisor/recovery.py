"""Taking over: rebuild the queue, the attempts and the timers from KV STATE.

A new term first rewrites every unfinished record with its own epoch (so a
deposed supervisor's late compare-and-set fails on each of them), then
re-arms every deadline from what is persisted, and re-sends the terminal
events (and DLQ entries) of tasks that ended just before the change, which
the streams deduplicate if they were already stored.

An unfinished record found later, at admission or with a result (written by a
deposed supervisor after this term loaded STATE), is adopted the same way
(`adopt_found`).

Instance silence is carried over too (`carry_last_heard`): an instance this
process never heard is judged by the last-heard time the previous leader
kept in KV AGENTS, not from this term's start.
"""

import asyncio
import logging
from typing import TYPE_CHECKING

import msgspec

from natsfleet.bus.kvread import latest_entries
from natsfleet.protocols import AgentInfo, Bucket, TaskState, is_terminal
from natsfleet.supervisor import transitions as tr
from natsfleet.supervisor.errors import RevisionConflict
from natsfleet.supervisor.registry import persist_every_s
from natsfleet.supervisor.store import Tracked, event_for, now_ms

if TYPE_CHECKING:  # the engine calls `adopt_found`
    from natsfleet.supervisor.engine import Engine

log = logging.getLogger(__name__)

#: Terminal records younger than this get their final event re-sent (the
#: streams' default duplicate window is two minutes).
RESEND_WINDOW_MS = 110_000
_ADOPT_CONCURRENCY = 256
# A deposed supervisor lands at most the few writes it had in flight.
_ADOPT_TRIES = 5
_AGENT_INFO = msgspec.json.Decoder(AgentInfo)


async def take_over(engine: "Engine") -> None:
    await carry_last_heard(engine)
    store = engine.store
    loaded = await store.load_all()
    unfinished = [t for t in loaded if not is_terminal(t.record.state)]
    await _adopt_all(engine, unfinished)
    for tracked in unfinished:
        if is_terminal(tracked.record.state):  # a deposed term's late write ended it
            store.forget(tracked.task_id)
            continue
        _rearm(engine, tracked)
    recent = now_ms() - RESEND_WINDOW_MS
    for tracked in loaded:
        record = tracked.record
        if is_terminal(record.state) and record.updated_ms >= recent:
            if record.state == TaskState.FAILED and record.dead_letter is not None:
                await engine.dead_letter_task(record, record.dead_letter)
            await store.emit(event_for(record))
    log.info(
        "took over partition %d (epoch %d): %d records, %d unfinished",
        store.lease.partition,
        store.lease.epoch,
        len(loaded),
        len(unfinished),
    )


async def carry_last_heard(engine: "Engine") -> None:
    """Seed the registry with when the previous leader last heard each instance.

    A record's `last_seen_ms` may lag the instance's last heartbeat by one
    persist interval (`registry.persist_every_s`), so that interval is added:
    an instance is never judged silent longer than it was, and is declared
    lost at most that much after heartbeat_timeout_s. The time is the old
    leader's wall clock, bounded by ours (never in the future): supervisors'
    clocks are assumed to agree to well under a second, as the lease's
    `expires_ms` already assumes. Best effort: without KV AGENTS, silence is
    counted from this term's start, as it was before.
    """
    lag_ms = int(persist_every_s(engine.cfg.heartbeat_timeout_s) * 1000)
    try:
        kv = await engine.bus.kv(Bucket.AGENTS)
        entries = await latest_entries(kv, engine.bus.config.js_timeout_s)
    except Exception as exc:
        log.warning("could not read KV AGENTS; instance silence counts from now: %r", exc)
        return
    now = now_ms()
    for entry in entries:
        if entry.operation is not None or not entry.value:
            continue
        try:
            info = _AGENT_INFO.decode(entry.value)
        except msgspec.DecodeError as exc:
            log.warning("unreadable KV AGENTS record %s: %s", entry.key, exc)
            continue
        heard_ms = min(info.last_seen_ms + lag_ms, now)
        engine.registry.carry(info.instance_id, info.incarnation, (now - heard_ms) / 1000)


async def adopt_found(engine: "Engine", found: Tracked) -> Tracked:
    """Adopt an unfinished record this term did not load; the tracked record."""
    store = engine.store
    tracked = store.track(found)
    if tracked is not found:  # adopted (or created) meanwhile
        return tracked
    log.warning(
        "task %s (epoch %d) was written after this term loaded STATE; adopting it",
        found.task_id,
        found.record.epoch,
    )
    try:
        await _adopt(engine, tracked)
    except BaseException:
        store.forget(tracked.task_id)
        raise
    if is_terminal(tracked.record.state):
        store.forget(tracked.task_id)
    else:
        _rearm(engine, tracked)
    return tracked


async def _adopt(engine: "Engine", tracked: Tracked) -> None:
    """Rewrite the record with this term's epoch, so older writers' CAS fails.

    A conflict reloads the record (`TaskStore.write`); one written by an
    older epoch in the meantime is adopted as it now is.
    """
    epoch = engine.store.lease.epoch
    async with tracked.lock:
        for attempt in range(_ADOPT_TRIES):
            if is_terminal(tracked.record.state):
                return
            try:
                await engine.store.write(tracked, tr.adopted(tracked.record, epoch, now_ms()))
                return
            except RevisionConflict:
                if attempt == _ADOPT_TRIES - 1:
                    raise


async def _adopt_all(engine: "Engine", unfinished: list[Tracked]) -> None:
    slots = asyncio.Semaphore(_ADOPT_CONCURRENCY)

    async def adopt(tracked: Tracked) -> None:
        async with slots:
            await _adopt(engine, tracked)

    async with asyncio.TaskGroup() as tg:
        for tracked in unfinished:
            tg.create_task(adopt(tracked))


def _rearm(engine: "Engine", tracked: Tracked) -> None:
    """Rebuild what memory held of an adopted record: its attempt, or its place in
    the queue. Its deadlines were armed when the adoption wrote it (deadlines.py)."""
    record = tracked.record
    if record.state == TaskState.INPUT_REQUIRED:
        return  # parked for a person (supervisor/approvals.py): nothing runs, nothing waits
    if record.state in tr.RUNNING_STATES and record.token is not None:
        attempt = engine.new_attempt(record, reserved=False)
        # Accepted or not, the instance's next heartbeat tells: a token it
        # does not hold ends the attempt (counted, as it was persisted).
        attempt.accepted = True
        attempt.deadline_ms = record.attempt_deadline_ms
        return
    if record.state != TaskState.RETRYING or record.not_before_ms is None:
        engine.enqueue(record)  # else its wake-up does
