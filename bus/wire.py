"""One publish on the hot path, without nats-py's generic per-call work.

`Client.publish` runs a regex over the subject and the reply, and for every
header a regex over its name plus a strip, a translate and three `extend`s;
the supervisor publishes ~5 messages per task, each with 2-4 headers, and
that generic path was ~15% of its CPU (docs/performance.md). Here the header
block is one f-string, the subject, reply and headers are checked with one
regex search and two counts, and the command goes to nats-py's pending buffer
exactly as `Client.publish` puts it there (`_send_command`, then the flusher
is woken the same way).

Anything unusual takes nats-py's own path: not connected (its reconnect
buffer applies), draining, over the max payload, or a nats-py without the
internals used here.
"""

import re
from typing import Any

from nats.aio.client import Client

_INVALID = re.compile(r"[ \t\r\n]")
# A header name is a token (what nats-py checks on each publish); checked once per name.
_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_good_names: set[str] = set()
_HEADER_START = "NATS/1.0\r\n"
# The nats-py internals used below (present since nats-py 2.0).
_FAST = all(hasattr(Client, name) for name in ("_send_command", "_flush_pending"))


async def publish(
    nc: Client, subject: str, payload: bytes, headers: dict[str, str], reply: str = ""
) -> None:
    """Publish `payload` with `headers` (and a reply subject); nats-py's semantics."""
    if not _FAST or not nc.is_connected or nc.is_draining_pubs or len(payload) > nc.max_payload:
        await nc.publish(subject, payload, reply=reply, headers=headers)
        return
    text = _HEADER_START + "".join(f"{key}: {value}\r\n" for key, value in headers.items())
    lines = len(headers) + 1
    # A CR or LF inside a name or value would end the header (or the command)
    # early: such a message takes nats-py's path, which rejects or cleans it.
    if (
        not subject
        or not _names_ok(headers)
        or _INVALID.search(subject)
        or (reply and _INVALID.search(reply))
        or text.count("\n") != lines
        or text.count("\r") != lines
    ):
        await nc.publish(subject, payload, reply=reply, headers=headers)
        return
    header = (text + "\r\n").encode()
    size = len(header)
    command = f"HPUB {subject} {reply} {size} {size + len(payload)}\r\n".encode()
    await _send(nc, command + header + payload + b"\r\n", len(payload))


async def publish_plain(nc: Client, subject: str, payload: bytes, reply: str = "") -> None:
    """Publish without headers (a JetStream ack, a bare reply); nats-py's semantics."""
    if (
        not _FAST
        or not nc.is_connected
        or nc.is_draining_pubs
        or len(payload) > nc.max_payload
        or not subject
        or _INVALID.search(subject)
        or (reply and _INVALID.search(reply))
    ):
        await nc.publish(subject, payload, reply=reply)
        return
    command = f"PUB {subject} {reply} {len(payload)}\r\n".encode()
    await _send(nc, command + payload + b"\r\n", len(payload))


async def _send(nc: Client, command: bytes, payload_size: int) -> None:
    # What `Client.publish` does once it has built the command.
    internals: Any = nc
    internals.stats["out_msgs"] += 1
    internals.stats["out_bytes"] += payload_size
    await internals._send_command(command)
    queue = getattr(internals, "_flush_queue", None)
    if queue is not None and queue.empty():
        await internals._flush_pending()


def _names_ok(headers: dict[str, str]) -> bool:
    for name in headers:
        if name not in _good_names:
            if not _NAME.fullmatch(name):
                return False
            _good_names.add(name)
    return True
