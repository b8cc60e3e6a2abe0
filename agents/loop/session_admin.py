"""Reading and deleting sessions from outside a task (`natsfleet sessions list|show|delete`)."""

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js import errors as js_errors

from natsfleet.agents.loop.session import DECODER, SessionError, session_stream
from natsfleet.agents.loop.session_records import Conversation, SessionFree, SessionLock
from natsfleet.bus.streamread import read_from
from natsfleet.protocols import check_id

_PAGE = 500
#: A listing reads at most this many sessions.
MAX_LISTED = 10_000


class SessionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One session as `natsfleet sessions list|show` prints it."""

    session_id: str
    conversation: Conversation
    lock: SessionLock | SessionFree | None = None

    @property
    def holder(self) -> str | None:
        """The task whose loop runs on the session now, if one does."""
        return self.lock.task_id if isinstance(self.lock, SessionLock) else None


async def list_sessions(js: JetStreamContext, bucket: str) -> list[SessionInfo]:
    """Every session of the bucket (at most `MAX_LISTED`), oldest write first."""
    stream = session_stream(bucket)
    base = f"$KV.{bucket}."
    conversations: dict[str, Conversation] = {}
    locks: dict[str, SessionLock | SessionFree] = {}
    start = 1
    try:
        while len(conversations) + len(locks) < 2 * MAX_LISTED:
            page = await read_from(js, stream, base + ">", start, _PAGE)
            for msg in page:
                start = msg.metadata.sequence.stream + 1
                session_id, _, key = msg.subject.removeprefix(base).partition(".")
                if msg.headers and msg.headers.get("KV-Operation"):
                    continue
                try:
                    entry = DECODER.decode(msg.data)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue  # listed without it; `show` names the problem
                if key == "conv" and isinstance(entry, Conversation):
                    conversations[session_id] = entry
                elif key == "lock" and not isinstance(entry, Conversation):
                    locks[session_id] = entry
            if len(page) < _PAGE:
                break
    except (js_errors.Error, nats.errors.Error, TimeoutError) as exc:
        raise SessionError("*", f"cannot list: {exc!r}") from exc
    return [
        SessionInfo(
            session_id=sid,
            conversation=conversations.get(sid, Conversation()),
            lock=locks.get(sid),
        )
        for sid in dict.fromkeys([*conversations, *locks])
    ]


async def show_session(js: JetStreamContext, bucket: str, session_id: str) -> SessionInfo | None:
    """One session, or None if it has no entries."""
    check_id(session_id, "session id")
    stream = session_stream(bucket)
    found: dict[str, object] = {}
    try:
        for key in ("conv", "lock"):
            try:
                msg = await js.get_last_msg(stream, f"$KV.{bucket}.{session_id}.{key}")
            except js_errors.NotFoundError:
                continue
            if msg.data and not (msg.headers and msg.headers.get("KV-Operation")):
                found[key] = DECODER.decode(msg.data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SessionError(session_id, f"unreadable: {exc}", retryable=False) from None
    except (js_errors.Error, nats.errors.Error, TimeoutError) as exc:
        raise SessionError(session_id, f"cannot read: {exc!r}") from exc
    if not found:
        return None
    conv = found.get("conv")
    lock = found.get("lock")
    return SessionInfo(
        session_id=session_id,
        conversation=conv if isinstance(conv, Conversation) else Conversation(),
        lock=lock if isinstance(lock, SessionLock | SessionFree) else None,
    )


async def delete_session(js: JetStreamContext, bucket: str, session_id: str) -> bool:
    """Purge every entry of the session; False if it had none.

    A loop running on it meanwhile finds its next write refused (the session's
    last sequence moved) and fails with `SessionFencedError`.
    """
    check_id(session_id, "session id")
    if await show_session(js, bucket, session_id) is None:
        return False
    try:
        await js.purge_stream(session_stream(bucket), subject=f"$KV.{bucket}.{session_id}.>")
    except (js_errors.Error, nats.errors.Error, TimeoutError) as exc:
        raise SessionError(session_id, f"cannot delete: {exc!r}") from exc
    return True
