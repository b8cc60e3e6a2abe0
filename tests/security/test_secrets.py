"""Secrets never leave a process: a key planted in every process's environment
appears in no log line, task event, task record, DLQ entry, span or CLI output."""

import asyncio
import json
import logging
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from natsfleet.agents.errors import describe_exception
from natsfleet.bus import Bus, BusConfig
from natsfleet.bus.deadletter import build_entry
from natsfleet.client import FleetClient
from natsfleet.process import NatsServer
from natsfleet.protocols import Bucket, DlqReason, Stream, encode
from natsfleet.telemetry import redact
from natsfleet.telemetry.logs import JsonFormatter, TextFormatter
from natsfleet.telemetry.span_export import redacted_span, to_record
from tests.procs import AgentProcs, agent_env, until_agents

NATSFLEET = str(Path(sys.executable).parent / "natsfleet")
R = redact.REDACTED


@pytest.fixture
def planted() -> Iterator[dict[str, str]]:
    """A fresh fake key and password, known to this process's registry only via `register`."""
    values = {
        "ANTHROPIC_API_KEY": f"sk-ant-test-{secrets.token_hex(16)}",
        "NATS_PASSWORD": f"pw-{secrets.token_hex(12)}",
        "BILLING_SERVICE_TOKEN": f"tok-{secrets.token_hex(12)}",
    }
    redact.reset()
    redact.register(*values.values())
    yield values
    redact.reset()


def test_environment_names_and_key_shapes() -> None:
    redact.reset()
    redact.load_environment(
        {"OPENAI_API_KEY": "abcdefgh12345", "X_SECRET": "s3cr3t-value", "HOME": "/home/someone"}
    )
    text = "key abcdefgh12345 and s3cr3t-value at /home/someone, sk-proj-ABCDEFGHIJKLMNOPQRST"
    assert redact.redact(text) == f"key {R} and {R} at /home/someone, {R}"
    assert redact.redact("a short pw") == "a short pw"  # values under 8 chars are not kept
    seed = "SU" + "A" * 56
    assert redact.redact(f"seed {seed}") == f"seed {R}"
    redact.reset()


def test_every_exit_in_process(planted: dict[str, str], tmp_path: Path) -> None:
    key = planted["ANTHROPIC_API_KEY"]
    secret_file = tmp_path / "key.txt"
    secret_file.write_text("file-held-secret-123\n")
    redact.register_file(secret_file)
    try:
        raise ValueError(f"bad key {key} / file-held-secret-123")
    except ValueError as exc:
        error_type, detail, _ = describe_exception(exc)
        record = logging.LogRecord("x", logging.ERROR, "f", 1, "with %s", (key,), sys.exc_info())
    record.api_key = key
    assert detail == f"bad key {R} / {R}" and error_type == "ValueError"
    for line in (JsonFormatter().format(record), TextFormatter().format(record)):
        assert key not in line and "file-held-secret-123" not in line and R in line
    entry = build_entry(
        reason=DlqReason.DECODE_ERROR,
        subject="s",
        error=f"boom {key}",
        headers={"Authorization": f"Bearer {key}"},
        payload=f'{{"k": "{key}"}}'.encode(),
    )
    assert key.encode() not in encode(entry) and entry.headers["Authorization"] == f"Bearer {R}"
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span(f"call {key}") as span:
        span.set_attribute("k", key)
        span.record_exception(ValueError(key))
    (finished,) = exporter.get_finished_spans()
    for text in (redacted_span(finished).to_json(), repr(to_record(finished, "svc"))):
        assert key not in text and R in text


async def test_a_run_leaks_the_key_nowhere(
    nats_server: NatsServer, prefix: str, tmp_path: Path, planted: dict[str, str]
) -> None:
    key = planted["ANTHROPIC_API_KEY"]
    env = {
        **planted,
        "NATSFLEET_TRACE_NATS": "1",
        "NATSFLEET_LOG_FORMAT": "json",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    async with (
        AgentProcs(nats_server.url, prefix, tmp_path / "logs") as procs,
        Bus(BusConfig(url=nats_server.url, prefix=prefix)) as bus,
    ):
        sup = await procs.start_supervisor("sup", {"registry_warmup_s": 0.2}, env=env)
        agent = await procs.start("tests.secret_agents:LeakyAgent", instance_id="leaky-1", env=env)
        await until_agents(FleetClient(bus), 1)
        submitted = await asyncio.to_thread(
            subprocess.run,
            [NATSFLEET, "submit", "call_model", "--input", '{"prompt": "hi"}', "--wait",
             "--timeout", "20", "--nats", nats_server.url, "--prefix", prefix],
            capture_output=True, text=True, timeout=40, env=agent_env(env),
        )  # fmt: skip
        cli_output = submitted.stdout + submitted.stderr
        assert submitted.returncode != 0 and "invalid x-api-key" in cli_output, cli_output
        # A malformed submit carrying the key in a header and the payload: dead-lettered.
        await bus.nc.publish(
            bus.subjects.submit(), f"not json {key}".encode(), headers={"X-Api-Key": key}
        )
        await _until(lambda: _stream_has(bus, Stream.SPANS, R.encode()), "redacted agent span")
        await _until(lambda: _stream_has(bus, Stream.DLQ, b"X-Api-Key"), "malformed submit DLQ")
        for process in (agent, sup):
            process.terminate()
            assert await process.wait(10) == 0, process.log()
        emitted = {
            name: await _stream_bytes(bus, bus.subjects.stream(stream))
            for name, stream in (("events", Stream.EVENTS), ("dlq", Stream.DLQ),
                                 ("spans", Stream.SPANS))
        }  # fmt: skip
        emitted["state"] = await _stream_bytes(bus, f"KV_{bus.subjects.bucket(Bucket.STATE)}")
    emitted["cli"] = cli_output.encode()
    for log_file in (tmp_path / "logs").glob("*.log"):
        emitted[log_file.name] = log_file.read_bytes()
    for value in planted.values():
        leaks = [name for name, data in emitted.items() if value.encode() in data]
        assert not leaks, f"{value[:12]}... found in {leaks}"
    for name in ("events", "dlq", "spans", "state", "cli", "leaky-1.log"):
        assert R.encode() in emitted[name], name
    agent_lines = [json.loads(line) for line in emitted["leaky-1.log"].splitlines()[1:] if line]
    assert any(line.get("api_key") == R and R in line.get("exc", "") for line in agent_lines)


async def _until(found: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not await found():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def _stream_has(bus: Bus, stream: Stream, needle: bytes) -> bool:
    return needle in await _stream_bytes(bus, bus.subjects.stream(stream))


async def _stream_bytes(bus: Bus, stream: str) -> bytes:
    """Every stored message of `stream`, headers and data, concatenated."""
    info = await bus.js.stream_info(stream)
    out = bytearray()
    if info.state.last_seq == 0:
        return bytes(out)
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await bus.js.get_msg(stream, seq)
        except Exception:  # deleted or purged sequence
            continue
        out += repr(msg.headers).encode() + (msg.data or b"") + b"\n"
    return bytes(out)
