"""One publish on the hot path, without nats-py's generic per-call work.

`Client.publish` runs a regex over the subject and the reply, and for every
header a regex over its name plus a strip, a translate and three `extend`s;
the supervisor publishes ~5 messages per task, each with 2-4 headers, and
that generic path was ~15% of its CPU (docs/performance.md). Here the header
block is built by f-strings, header names are checked once per name, values
for CR/LF and subjects for whitespace and control characters with `in` and
`isprintable`, and the command goes to nats-py's pending buffer exactly as
`Client.publish` puts it there (then the flusher is woken the same way).

Anything unusual takes nats-py's own path: not connected (its reconnect
buffer applies), draining, over the max payload. The private names of
nats-py's client used here are `INTERNALS`; the bus only uses this module
through the fast transport (bus/_fast.py), chosen when they all exist.
"""

import re
from typing import Any

from nats.aio.client import Client

# A header name is a token (what nats-py checks on each publish); checked once per name.
_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_good_names: set[str] = set()
_HEADER_START = "NATS/1.0\r\n"
_CRLF = b"\r\n"
_CONNECTED = getattr(Client, "CONNECTED", None)
#: The nats-py client's private names used below (present since nats-py 2.0).
INTERNALS = (
    "_status", "_max_payload", "_pending", "_pending_data_size", "_max_pending_size",
    "_flush_queue", "_flush_pending", "stats",
)  # fmt: skip


async def publish(
    nc: Client, subject: str, payload: bytes, headers: dict[str, str], reply: str = ""
) -> None:
    """Publish `payload` with `headers` (and a reply subject); nats-py's semantics."""
    internals: Any = nc
    header = _header_block(headers) if _sendable(internals, subject, payload, reply) else None
    if header is None:
        await nc.publish(subject, payload, reply=reply, headers=headers)
        return
    size = len(header)
    command = f"HPUB {subject} {reply} {size} {size + len(payload)}\r\n".encode()
    await _send(internals, b"".join((command, header, payload, _CRLF)), len(payload))


async def publish_plain(nc: Client, subject: str, payload: bytes, reply: str = "") -> None:
    """Publish without headers (a JetStream ack, a bare reply); nats-py's semantics."""
    internals: Any = nc
    if not _sendable(internals, subject, payload, reply):
        await nc.publish(subject, payload, reply=reply)
        return
    command = f"PUB {subject} {reply} {len(payload)}\r\n".encode()
    await _send(internals, b"".join((command, payload, _CRLF)), len(payload))


def _sendable(internals: Any, subject: str, payload: bytes, reply: str) -> bool:
    """Whether this publish may skip nats-py: connected, within the max payload,
    and subjects without whitespace or control characters."""
    return (
        internals._status == _CONNECTED
        and len(payload) <= internals._max_payload
        and _subject_ok(subject)
        and (not reply or _subject_ok(reply))
    )


def _header_block(headers: dict[str, str]) -> bytes | None:
    """The HPUB header block, or None when nats-py must build it: a CR or LF
    would end the header (or the command) early, and a bad name is refused;
    nats-py's path cleans or rejects those."""
    text = _HEADER_START
    for key, value in headers.items():
        if (key not in _good_names and not _name_ok(key)) or "\r" in value or "\n" in value:
            return None
        text += f"{key}: {value}\r\n"
    return (text + "\r\n").encode()


async def _send(internals: Any, command: bytes, payload_size: int) -> None:
    # What `Client.publish` does once it has built the command
    # (`_send_command`, then wake the flusher), without two coroutine calls.
    internals.stats["out_msgs"] += 1
    internals.stats["out_bytes"] += payload_size
    internals._pending.append(command)
    internals._pending_data_size += len(command)
    limit = internals._max_pending_size
    if limit > 0 and internals._pending_data_size > limit:
        await internals._flush_pending(force_flush=True)
    elif internals._flush_queue.empty():
        await internals._flush_pending()


def _subject_ok(subject: str) -> bool:
    # Not empty, no whitespace or control character (a space would split the
    # command, a CR or LF end it); anything else goes to nats-py to judge.
    return subject.isprintable() and " " not in subject and subject != ""


def _name_ok(name: str) -> bool:
    if not _NAME.fullmatch(name):
        return False
    _good_names.add(name)
    return True
