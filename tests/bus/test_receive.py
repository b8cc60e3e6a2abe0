"""bus/_receive.py: the same headers as nats-py, and direct subscriptions that skip its queue."""

import asyncio
import logging

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from natsfleet.bus._receive import FleetNats, parse_headers
from natsfleet.bus.transport import PublicTransport
from natsfleet.process import NatsServer

BLOCKS = [
    b"NATS/1.0\r\nNatsfleet-Version: 1\r\nNats-Msg-Id: 01ABC:tok\r\n\r\n",
    b"NATS/1.0\r\nA:b\r\n\r\n",
    b"NATS/1.0\r\nA:\t spaced value \t\r\n\r\n",
    b"NATS/1.0\r\nA: \xff not utf-8\r\n\r\n",
    b"NATS/1.0\r\nA: one\r\nA: two\r\n\r\n",
    # For nats-py to parse: a name with spaces or odd characters, a line
    # without a colon, an empty block, inline statuses.
    b"NATS/1.0\r\nA b: c\r\nD: e\r\n\r\n",
    b"NATS/1.0\r\n A: c\r\n\r\n",
    b"NATS/1.0\r\nX_y.z: c\r\n\r\n",
    b"NATS/1.0\r\nno colon\r\nB: 2\r\n\r\n",
    b"NATS/1.0\r\n\r\n",
    b"NATS/1.0 503\r\n\r\n",
    b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 5\r\nNats-Pending-Bytes: 0\r\n\r\n",
    b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 3\r\nNats-Last-Stream: 9\r\n\r\n",
]


@pytest.mark.parametrize("block", BLOCKS)
async def test_headers_parse_to_what_nats_py_gives(block: bytes) -> None:
    expected = await Client()._process_headers(block)
    assert await FleetNats()._process_headers(block) == expected
    fast = parse_headers(block)
    assert fast is None or fast == expected


def test_the_plain_blocks_we_publish_take_the_fast_parser() -> None:
    assert parse_headers(BLOCKS[0]) == {"Natsfleet-Version": "1", "Nats-Msg-Id": "01ABC:tok"}
    assert parse_headers(BLOCKS[4]) == {"A": "two"}  # the last value wins, as in nats-py
    for odd in BLOCKS[5:]:
        assert parse_headers(odd) is None


async def _connect(url: str) -> FleetNats:
    nc = FleetNats()
    await nc.connect(url)
    return nc


async def test_direct_handler_gets_every_message_in_order_with_headers(
    nats_server: NatsServer,
) -> None:
    nc, sender = await _connect(nats_server.url), await nats.connect(nats_server.url)
    got: list[Msg] = []
    try:
        sub = await nc.subscribe_direct("d.>", got.append)
        await nc.flush()
        for i in range(50):
            await sender.publish(f"d.{i}", str(i).encode(), reply="r.x", headers={"N": str(i)})
        await sender.publish("d.status", b"", headers={"Status": "408"})
        await sender.flush()
        async with asyncio.timeout(2):
            while len(got) < 51:
                await nc.flush()
        assert [m.data for m in got[:50]] == [str(i).encode() for i in range(50)]
        assert all(m.headers == {"N": str(i)} for i, m in enumerate(got[:50]))
        assert (got[0].subject, got[0].reply) == ("d.0", "r.x")
        assert got[50].headers == {"Status": "408"}
        assert nc.stats["in_msgs"] >= 51
        # No task behind it and no queue: nothing is ever pending.
        assert sub._wait_for_msgs_task is None
        assert sub.pending_msgs == 0
    finally:
        await nc.close()
        await sender.close()


async def test_a_failing_handler_is_logged_and_the_connection_goes_on(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    nc = await _connect(nats_server.url)
    got: list[bytes] = []

    def handler(msg: Msg) -> None:
        if msg.data == b"bad":
            raise ValueError("handler bug")
        got.append(msg.data)

    try:
        await nc.subscribe_direct("f", handler)
        with caplog.at_level(logging.ERROR, logger="natsfleet.bus._receive"):
            for data in (b"one", b"bad", b"two"):
                await nc.publish("f", data)
            async with asyncio.timeout(2):
                while len(got) < 2:
                    await nc.flush()
        assert got == [b"one", b"two"]
        assert nc.is_connected
        assert "handler for f failed" in caplog.text
    finally:
        await nc.close()


async def test_after_unsubscribe_nothing_more_arrives_and_the_handler_is_forgotten(
    nats_server: NatsServer,
) -> None:
    nc = await _connect(nats_server.url)
    got: list[bytes] = []
    try:
        sub = await nc.subscribe_direct("u", lambda msg: got.append(msg.data))
        await nc.publish("u", b"before")
        async with asyncio.timeout(2):
            while not got:
                await nc.flush()
        sid = sub._id
        assert sub.delivered == 1
        await sub.unsubscribe()
        assert sid not in nc._direct
        await nc.publish("u", b"after")
        await nc.flush()
        # A message already read for the old sid is dropped and the entry goes.
        await nc._process_msg(sid, b"u", b"", b"late", b"")
        assert got == [b"before"]
        assert sid not in nc._direct
    finally:
        await nc.close()


async def test_on_the_public_transport_the_handler_runs_behind_nats_py_queue(
    nats_server: NatsServer,
) -> None:
    nc = await nats.connect(nats_server.url)
    got: list[bytes] = []
    try:
        transport = PublicTransport(nc, js_timeout_s=5.0)
        sub = await transport.subscribe("p", lambda msg: got.append(msg.data))
        assert sub._wait_for_msgs_task is not None
        await nc.publish("p", b"x")
        async with asyncio.timeout(2):
            while not got:
                await nc.flush()
        assert got == [b"x"]
    finally:
        await nc.close()


class _Recorder:
    """What a parser hands to its client, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    async def _process_msg(self, *args: object) -> None:
        self.calls.append(("msg", *args))

    async def _process_ping(self) -> None:
        self.calls.append(("ping",))

    async def _process_pong(self) -> None:
        self.calls.append(("pong",))

    async def _process_info(self, info: object) -> None:
        self.calls.append(("info", info))

    async def _process_err(self, err: str) -> None:
        self.calls.append(("err", err))


def _hmsg(subject: bytes, sid: int, reply: bytes, headers: bytes, payload: bytes) -> bytes:
    size = len(headers)
    line = b" ".join(x for x in (b"HMSG", subject, b"%d" % sid, reply) if x)
    return line + b" %d %d\r\n" % (size, size + len(payload)) + headers + payload + b"\r\n"


STREAM = (
    b'INFO {"server_id":"x","max_payload":1048576}\r\n'
    b"MSG a.b 1 5\r\nhello\r\n"
    b"MSG a.b 2 _INBOX.r.1 0\r\n\r\n"
    b"PING\r\n"
    + _hmsg(b"$JS.ACK.x", 3, b"_INBOX.r.2", b"NATS/1.0\r\nA: b\r\nC:  d \r\n\r\n", b"hello")
    + _hmsg(b"p.q", 4, b"", b"NATS/1.0 503\r\n\r\n", b"")
    + b"+OK\r\n"
    b"MSG\ta.c\t5  8\r\nwith\r\nlf\r\n"
    b"PONG\r\n"
    b"-ERR 'Stale Connection'\r\n"
    + b"".join(_hmsg(b"s.%d" % i, 6, b"r.%d" % i, b"NATS/1.0\r\n\r\n", b"abc") for i in range(40))
)


async def _feed(parser: object, chunks: list[bytes]) -> None:
    for chunk in chunks:
        await parser.parse(chunk)  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", range(25))
async def test_the_fast_parser_hands_on_what_nats_py_parser_does(seed: int) -> None:
    import random

    from nats.protocol.parser import Parser

    from natsfleet.bus._receive import FastParser

    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(STREAM)), rng.randrange(0, 60)))
    chunks = [STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(STREAM)], strict=True)]
    theirs, ours = _Recorder(), _Recorder()
    await _feed(Parser(theirs), chunks)
    await _feed(FastParser(ours), chunks)
    assert ours.calls == theirs.calls
    assert len([c for c in ours.calls if c[0] == "msg"]) == 45


async def test_a_malformed_control_line_is_refused_as_nats_py_refuses_it() -> None:
    from nats.errors import ProtocolError

    from natsfleet.bus._receive import FastParser

    for line in (b"MSG a.b\r\n", b"MSG a.b x 5\r\nhello\r\n", b"HMSG a 1 2\r\n", b"NOPE\r\n"):
        with pytest.raises(ProtocolError):
            await FastParser(_Recorder()).parse(line)


async def test_data_read_before_a_reset_is_dropped_after_it() -> None:
    from natsfleet.bus._receive import FastParser

    recorder = _Recorder()
    parser = FastParser(recorder)

    async def reset_on_first(*args: object) -> None:
        recorder.calls.append(("msg", *args))
        parser.reset()  # what a reconnect does while the old data is being read

    recorder._process_msg = reset_on_first  # type: ignore[method-assign]
    await parser.parse(b"MSG a 1 1\r\nx\r\nMSG b 1 1\r\ny\r\n")
    assert [c[2] for c in recorder.calls] == [b"a"]
    await parser.parse(b"MSG c 1 1\r\nz\r\n")  # the new connection's data is read
    assert [c[2] for c in recorder.calls] == [b"a", b"c"]


async def test_a_large_payload_arriving_in_small_reads_is_not_copied_per_read() -> None:
    from natsfleet.bus._receive import FastParser

    recorder = _Recorder()
    parser = FastParser(recorder)
    payload = bytes(range(256)) * 4096  # 1 MiB
    stream = b"MSG big 1 %d\r\n" % len(payload) + payload + b"\r\nMSG after 1 1\r\nx\r\n"
    await parser.parse(stream[:20_000])
    held = parser.buf
    for at in range(20_000, len(stream) - 40_000, 32_768):
        await parser.parse(stream[at : at + 32_768])
        assert parser.buf is held  # extended in place, not rebuilt (quadratic in size)
    await parser.parse(stream[at + 32_768 :])
    assert [(c[2], c[4]) for c in recorder.calls] == [(b"big", payload), (b"after", b"x")]
