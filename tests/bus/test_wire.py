"""bus/_wire.py: the hot-path publish puts the same message on the wire as nats-py's."""

import asyncio

import nats
import pytest
from nats.aio.msg import Msg

from natsfleet.bus import _wire as wire
from natsfleet.process import NatsServer


async def _receive(nc: nats.NATS, subject: str) -> "asyncio.Queue[Msg]":
    got: asyncio.Queue[Msg] = asyncio.Queue()

    async def handle(msg: Msg) -> None:
        got.put_nowait(msg)

    await nc.subscribe(subject, cb=handle)
    await nc.flush()
    return got


async def test_subject_reply_headers_and_payload_arrive_as_sent(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        got = await _receive(nc, "w.>")
        headers = {"Natsfleet-Version": "1", "Nats-Msg-Id": "01ABC:tok en"}
        await wire.publish(nc, "w.one", b'{"x": 1}', headers, "_INBOX.r.1")
        await wire.publish(nc, "w.two", b"", {"A": "b"})
        first = await asyncio.wait_for(got.get(), 2)
        second = await asyncio.wait_for(got.get(), 2)
        assert (first.subject, first.reply, first.data) == ("w.one", "_INBOX.r.1", b'{"x": 1}')
        assert first.headers == headers
        assert (second.subject, second.reply, second.data, second.headers) == (
            "w.two", "", b"", {"A": "b"},
        )  # fmt: skip
    finally:
        await nc.close()


@pytest.mark.parametrize("value", ["evil\r\nPUB w.injected 1\r\nx", "line\nbreak", "cr\rhere"])
async def test_a_line_break_in_a_header_cannot_inject_a_command(
    nats_server: NatsServer, value: str
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        got = await _receive(nc, "w.>")
        await wire.publish(nc, "w.one", b"payload", {"Nats-Msg-Id": value})
        await wire.publish(nc, "w.after", b"still connected", {"A": "b"})
        received = [await asyncio.wait_for(got.get(), 2) for _ in range(2)]
        assert [m.subject for m in received] == ["w.one", "w.after"]
        assert received[0].data == b"payload"
        assert "\n" not in (received[0].headers or {}).get("Nats-Msg-Id", "")
        assert got.empty()
    finally:
        await nc.close()


async def test_a_bad_subject_is_refused_as_nats_py_refuses_it(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        with pytest.raises(nats.errors.BadSubjectError):
            await wire.publish(nc, "w.a b", b"", {"A": "b"})
    finally:
        await nc.close()


async def test_an_empty_subject_or_a_bad_header_name_is_refused_not_sent(
    nats_server: NatsServer,
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        got = await _receive(nc, "w.>")
        with pytest.raises(nats.errors.BadSubjectError):
            await wire.publish(nc, "", b"", {"A": "b"})
        with pytest.raises(nats.errors.BadHeaderError):
            await wire.publish(nc, "w.one", b"", {"Bad Name": "b"})
        # The connection is fine and nothing else went out.
        await wire.publish(nc, "w.after", b"ok", {"A": "b"})
        msg = await asyncio.wait_for(got.get(), 2)
        assert (msg.subject, msg.data) == ("w.after", b"ok") and got.empty()
        assert nc.is_connected
    finally:
        await nc.close()


async def test_a_plain_publish_arrives_as_nats_py_would_send_it(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        got = await _receive(nc, "w.>")
        await wire.publish_plain(nc, "w.one", b'{"x": 1}', "_INBOX.r.1")
        await wire.publish_plain(nc, "w.two", b"")
        await wire.publish_plain(nc, "w.three", b"line\r\nbreak inside the payload")
        received = [await asyncio.wait_for(got.get(), 2) for _ in range(3)]
        assert [(m.subject, m.reply, m.data, m.headers) for m in received] == [
            ("w.one", "_INBOX.r.1", b'{"x": 1}', None),
            ("w.two", "", b"", None),
            ("w.three", "", b"line\r\nbreak inside the payload", None),
        ]
        for bad in ("", "w.sp ace", "w.new\r\nPUB w.x 1"):
            with pytest.raises(nats.errors.BadSubjectError):
                await wire.publish_plain(nc, bad, b"x")
        assert nc.is_connected
    finally:
        await nc.close()
