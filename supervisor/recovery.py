"""Taking over: rebuild the queue, the attempts and the timers from KV STATE.

A new term first rewrites every unfinished record with its own epoch (so a
deposed supervisor's late compare-and-set fails on each of them), then
re-arms every deadline from what is persisted, and re-sends the terminal
events (and DLQ entries) of tasks that ended just before the change, which
the streams deduplicate if they were already stored.

An unfinished record found later, at admission or with a result (written by a
deposed supervisor after this term loaded STATE), is adopted the same way
(`adopt_found`).
"""

import asyncio
import logging
from typing import TYPE_CHECKING

from natsfleet.protocols import TaskState, is_terminal
from natsfleet.supervisor import transitions as tr
from natsfleet.supervisor.errors import RevisionConflict
from natsfleet.supervisor.store import Tracked, event_for, now_ms
from natsfleet.supervisor.timers import TimerKind

if TYPE_CHECKING:  # the engine calls `adopt_found`
    from natsfleet.supervisor.engine import Engine

log = logging.getLogger(__name__)

#: Terminal records younger than this get their final event re-sent (the
#: streams' default duplicate window is two minutes).
RESEND_WINDOW_MS = 110_000
_ADOPT_CONCURRENCY = 256
# A deposed supervisor lands at most the few writes it had in flight.
_ADOPT_TRIES = 5


async def take_over(engine: "Engine") -> None:
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
    record = tracked.record
    timers = engine.timers
    timers.add(record.close_deadline_ms, TimerKind.CLOSE, record.task_id)
    if record.state in tr.RUNNING_STATES and record.token is not None:
        attempt = engine.new_attempt(record, reserved=False)
        # Accepted or not, the instance's next heartbeat tells: a token it
        # does not hold ends the attempt (counted, as it was persisted).
        attempt.accepted = True
        attempt.deadline_ms = record.attempt_deadline_ms
        timers.add(record.attempt_deadline_ms, TimerKind.ATTEMPT, record.task_id, record.token)
        return
    timers.add(record.schedule_deadline_ms, TimerKind.SCHEDULE, record.task_id)
    if record.state == TaskState.RETRYING and record.not_before_ms is not None:
        timers.add(record.not_before_ms, TimerKind.RETRY, record.task_id)
    else:
        engine.enqueue(record)
