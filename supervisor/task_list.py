"""`ctl.list`: one page of tasks, newest write first, read from KV STATE by
stream sequence.

With `history=1` every message left in the STATE stream is the latest record
of one task, so walking the stream downwards from its last sequence lists
every task once, most recently changed first. A page reads chunks of the
stream below its cursor (`bus.streamread`, a bounded fetch each) until it
has `limit` rows or has read `MAX_SCAN` sequence numbers, so its cost does not
depend on how many tasks STATE holds; the reply's `next_before_seq` is where
the next page starts. A live task is shown as this supervisor tracks it
(e.g. `working`, which is not written to STATE). The first page also shows
live tasks written after the walk began (or not written yet). A task that
changes between two pages moves to the top: it may be missed by later pages
or shown twice, as in any listing of a changing set.
"""

import msgspec
from nats.aio.msg import Msg

from natsfleet.bus.streamread import read_from
from natsfleet.protocols import (
    ListRequest,
    TaskListReply,
    TaskRecord,
    TaskSummary,
    is_terminal,
)
from natsfleet.supervisor.store import TaskStore

_RECORD = msgspec.json.Decoder(TaskRecord)
#: Rows per page at most (a page of summaries stays far below a max payload).
MAX_LIST = 1000
#: Sequence numbers one page may read looking for rows that match its filter.
MAX_SCAN = 20_000
_MIN_CHUNK = 256
_UNWRITTEN = 2**63  # sorts a record not yet in STATE before every written one
_DELETED = ("KV-Operation", "Nats-Marker-Reason")


async def list_tasks(store: TaskStore, request: ListRequest) -> TaskListReply:
    if request.state is not None and not is_terminal(request.state):
        return _live(store, request)
    status = await store.kv.status()
    info = status.stream_info
    first, last = info.state.first_seq, info.state.last_seq
    limit = max(0, min(request.limit, MAX_LIST))
    top = last if request.before_seq is None else min(last, request.before_seq - 1)
    rows: list[TaskRecord] = []
    seen: set[str] = set()
    if request.before_seq is None:
        # Live tasks the walk cannot see: written after it began, or not yet.
        for tracked in store:
            if tracked.revision == 0 or tracked.revision > top:
                seen.add(tracked.task_id)
                _add(rows, tracked.shown(), request, limit)
    cursor, hi, scanned = top + 1, top, 0
    subjects = f"$KV.{status.bucket}.>"
    while info.state.messages and hi >= first and len(rows) < limit and scanned < MAX_SCAN:
        chunk = min(max(2 * (limit - len(rows)), _MIN_CHUNK), MAX_SCAN - scanned, hi - first + 1)
        low = hi - chunk + 1
        found = await read_from(store.bus.js, f"KV_{status.bucket}", subjects, low, chunk)
        cursor = low
        for msg in reversed(found):
            seq = msg.metadata.sequence.stream
            if seq > hi or not _is_record(msg):
                continue
            key = msg.subject[len(subjects) - 1 :]
            if key in seen:
                continue
            seen.add(key)
            record = _current(store, key, msg)
            if record is not None and _add(rows, record, request, limit):
                cursor = seq
                break
        scanned += chunk
        hi = low - 1
    more = info.state.messages > 0 and cursor > first
    rows.sort(key=lambda r: r.created_ms, reverse=True)
    return TaskListReply(
        tasks=tuple(_summary(r) for r in rows),
        total=info.state.messages,
        more=more,
        next_before_seq=cursor if more else None,
    )


def _live(store: TaskStore, request: ListRequest) -> TaskListReply:
    """Unfinished tasks in one state: all of them are in memory (the cursor is
    still a STATE sequence: each record's revision; unwritten ones come first)."""
    limit = max(0, min(request.limit, MAX_LIST))
    before = request.before_seq
    matching = [t for t in store if t.shown().state == request.state]
    found = [t for t in matching if before is None or 0 < t.revision < before]
    found.sort(key=lambda t: t.revision or _UNWRITTEN, reverse=True)
    page = found[:limit]
    cursor = page[-1].revision if len(found) > limit and page else 0
    return TaskListReply(
        tasks=tuple(_summary(t.shown()) for t in page),
        total=len(matching),
        more=cursor > 0,
        next_before_seq=cursor or None,
    )


def _is_record(msg: Msg) -> bool:
    headers = msg.headers or {}
    return bool(msg.data) and not any(h in headers for h in _DELETED)


def _current(store: TaskStore, key: str, msg: Msg) -> TaskRecord | None:
    tracked = store.get(key)
    if tracked is not None:
        return tracked.shown()
    try:
        return _RECORD.decode(msg.data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _add(rows: list[TaskRecord], record: TaskRecord, request: ListRequest, limit: int) -> bool:
    """Add `record` if it passes the filter and there is room; True once the page is full."""
    if len(rows) < limit and (request.state is None or record.state == request.state):
        rows.append(record)
    return len(rows) >= limit


def _summary(r: TaskRecord) -> TaskSummary:
    return TaskSummary(
        task_id=r.task_id,
        skill=r.skill,
        workflow=r.workflow,
        state=r.state,
        attempts=r.attempts,
        instance_id=r.instance_id,
        created_ms=r.created_ms,
        updated_ms=r.updated_ms,
        usage=r.usage,
    )
