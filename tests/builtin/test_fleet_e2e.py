"""The built-in agents as OS processes under the real supervisor, end to end."""

import asyncio
import email
import email.policy
import signal
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from icalendar import Calendar

from natsfleet.agents.tools import cited_numbers
from natsfleet.cli.demo_fleet import DemoFleet
from natsfleet.cli.demo_steps import ledger, run_content, run_travel
from natsfleet.client import TaskFailed
from natsfleet.protocols import TaskState
from tests.builtin.conftest import wire_llm_table

QUESTION = "How does JetStream remove duplicate messages?"


def quiet(*_: Any) -> None:
    return None


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[DemoFleet]:
    async with DemoFleet(tmp_path / "run") as running:
        yield running


async def test_content_workflow_with_agent_processes(fleet: DemoFleet) -> None:
    outcome = await run_content(fleet.client, QUESTION)
    assert outcome.output.verdict == "approve" and outcome.output.rounds == 1
    draft = outcome.output.article
    cited = set(cited_numbers(draft.text))
    assert len(cited) >= 2 and cited <= {s.n for s in draft.sources}
    steps = [(row.step, row.agent) for row in outcome.ledger]
    assert steps == [("research", "researcher-1"), ("write", "writer-1"), ("edit", "editor-1")]
    research = outcome.ledger[0].usage
    assert research.calls == 1 and research.input_tokens > 0  # usage reached task status


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self.messages.append(email.message_from_bytes(raw, policy=email.policy.default))  # type: ignore[arg-type]
        return "250 OK"


async def test_travel_workflow_with_approval_smtp_and_ics(tmp_path: Path) -> None:
    inbox = _Inbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(inbox), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    smtp = {"NATSFLEET_SMTP_HOST": "127.0.0.1", "NATSFLEET_SMTP_PORT": str(port)}
    request = "Book me a flight from BOS to Chicago on 2030-05-07 for 2 people"
    try:
        async with DemoFleet(
            tmp_path / "run", agents=("booker",), agent_env={"booker": smtp}
        ) as fleet:
            outcome = await run_travel(fleet.client, request, email="ada@example.com")
            # pay without the approval's token fails at once, not retried.
            task_id = await fleet.client.submit(
                "pay", {"booking": msgspec.to_builtins(outcome.output.itinerary)}
            )
            with pytest.raises(TaskFailed):
                await fleet.client.result(task_id, dict, timeout_s=30)
            record = await fleet.client.status(task_id)
    finally:
        server.close()
    assert "Book and pay for [SANDBOX" in outcome.prompt and "BOS" in outcome.prompt
    assert record.state == TaskState.FAILED and record.attempts == 1
    assert record.error is not None and record.error.error_type == "ApprovalRequiredError"
    out = outcome.output
    booking = out.itinerary
    assert (booking.offer.origin.iata, booking.offer.destination.iata) == ("BOS", "ORD")
    assert booking.offer.passengers == 2 and booking.passenger.email == "ada@example.com"
    assert out.payment.amount_cents == booking.offer.total_cents
    assert out.payment.approval_token.startswith(outcome.run_id)
    ics = Path(out.calendar.path)
    assert ics.is_relative_to(tmp_path / "run" / "data" / "calendar")
    event = next(iter(Calendar.from_ical(ics.read_bytes()).walk("VEVENT")))
    assert str(event["UID"]).startswith(booking.booking_id)
    assert out.confirmation.delivery == "smtp" and out.confirmation.server.endswith(str(port))
    (mail,) = inbox.messages
    assert mail["To"] == "ada@example.com" and "BOS -> ORD" in str(mail["Subject"])
    assert [p.get_content_type() for p in mail.iter_attachments()] == ["text/calendar"]


async def test_travel_workflow_refused_approval_books_nothing(tmp_path: Path) -> None:
    async with DemoFleet(tmp_path / "run", agents=("booker",)) as fleet:
        with pytest.raises(TaskFailed) as refused:
            await run_travel(fleet.client, "from BOS to Chicago on 2030-05-07", approve=False)
        ran = {row.step for row in await ledger(fleet.client, refused.value.event.task_id)}
    assert refused.value.event.state == TaskState.FAILED
    assert "approval refused" in str(refused.value)
    assert ran == {"parse", "search", "hold"}  # no book, no pay
    assert not list((tmp_path / "run" / "data").glob("calendar/*.ics"))


async def test_writer_killed_mid_workflow_is_reassigned_and_completes_once(
    tmp_path: Path, wire: Any
) -> None:
    """writer-1 hangs inside its model call and is SIGKILLed; writer-2 finishes the step."""
    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(_toml(wire_llm_table(wire.url, "openai")))
    body = (
        "JetStream drops a message whose id it saw within the window [1]. "
        "Idempotency keys make side effects happen once, even when a task runs twice [2]. "
    )
    article = "# Dedup\n\n" + body * 6
    wire.script("m-medium", wire.slow(30.0, article), wire.ok(article))
    writer_env = {"NATSFLEET_FLEET_FILE": str(fleet_file), "WIRE_KEY": "k"}
    supervisor = {"timeouts": {"heartbeat_timeout_s": 1.0}}
    # Heartbeats well inside the 1 s timeout: at the default 2 s interval every
    # instance looks dead half the time and the run is refused at admission.
    async with DemoFleet(
        tmp_path / "run", agents=("researcher", "editor"), agent_env={"writer": writer_env},
        supervisor_config=supervisor, agent_args=("--heartbeat-s", "0.25"),
    ) as fleet:  # fmt: skip
        first = await fleet.start_agent("writer", "writer-1")
        running = asyncio.create_task(run_content(fleet.client, QUESTION))
        await _until(lambda: wire.count("m-medium") >= 1, 30)
        first.signal(signal.SIGKILL)
        await fleet.start_agent("writer", "writer-2")
        outcome = await asyncio.wait_for(running, 90)
        write_rows = [row for row in outcome.ledger if row.step == "write"]
        record = await fleet.client.status(write_rows[0].task_id)
    assert outcome.output.verdict == "approve" and outcome.output.article.model == "m-medium"
    assert len(write_rows) == 1 and record.state == TaskState.COMPLETED
    assert [(a.instance_id, a.outcome) for a in record.history] == [
        ("writer-1", "lost"),
        ("writer-2", "completed"),
    ]
    assert wire.count("m-medium") == 2 and record.usage.calls == 1


async def _until(predicate: Any, timeout_s: float) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout_s)


def _toml(table: dict[str, Any]) -> str:
    lines = []
    for name, provider in table["providers"].items():
        lines.append(f"[llm.providers.{name}]")
        lines += [f'{k} = "{v}"' for k, v in provider.items()]
    for model in table["models"]:
        lines.append("[[llm.models]]")
        lines += [
            f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"' for k, v in model.items()
        ]
    lines.append("[llm.routing]")
    lines += [f"{k} = {v}" for k, v in table["routing"].items()]
    return "\n".join(lines) + "\n"
