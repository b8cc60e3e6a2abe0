"""The built-in agents as OS processes under the real supervisor, end to end."""

import asyncio
import email
import email.policy
import signal
from collections.abc import AsyncIterator
from datetime import date
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from icalendar import Calendar

from natsfleet.agents.builtins.content_types import Draft, Findings, ResearchInput, WriteInput
from natsfleet.agents.builtins.travel_types import PayInput
from natsfleet.agents.tools import cited_numbers
from natsfleet.bus import TaskFailed
from natsfleet.cli.demo_fleet import DemoFleet
from natsfleet.cli.demo_steps import run_content, run_travel
from natsfleet.protocols import TaskState
from tests.builtin.conftest import wire_llm_table

QUESTION = "How does JetStream remove duplicate messages?"


def quiet(*_: Any) -> None:
    return None


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[DemoFleet]:
    async with DemoFleet(tmp_path / "run") as running:
        yield running


async def test_content_job_with_agent_processes(fleet: DemoFleet) -> None:
    outcome = await run_content(fleet.client, quiet, QUESTION)
    assert outcome.verdict.approved and outcome.rounds == 1
    cited = set(cited_numbers(outcome.draft.text))
    assert len(cited) >= 2 and cited <= {s.n for s in outcome.draft.sources}
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


async def test_travel_job_with_smtp_and_ics(tmp_path: Path) -> None:
    inbox = _Inbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(inbox), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    smtp = {"NATSFLEET_SMTP_HOST": "127.0.0.1", "NATSFLEET_SMTP_PORT": str(port)}
    try:
        async with DemoFleet(
            tmp_path / "run", agents=("booker",), agent_env={"booker": smtp}
        ) as fleet:
            request = "Book me a flight from BOS to Chicago on 2030-05-07 for 2 people"
            outcome = await run_travel(fleet.client, quiet, request, date(2030, 5, 1))
            # pay without the approval's token fails at once, not retried.
            task_id = await fleet.client.submit("pay", PayInput(booking=outcome.booking))
            with pytest.raises(TaskFailed):
                await fleet.client.result(task_id, dict, timeout_s=30)
            record = await fleet.client.status(task_id)
    finally:
        server.close()
    assert record.state == TaskState.FAILED and record.attempts == 1
    assert record.error is not None and record.error.error_type == "ApprovalRequiredError"
    booking = outcome.booking
    assert (booking.offer.origin.iata, booking.offer.destination.iata) == ("BOS", "ORD")
    assert (
        booking.offer.passengers == 2 and outcome.payment.amount_cents == booking.offer.total_cents
    )
    ics = Path(outcome.calendar.path)
    assert ics.is_relative_to(tmp_path / "run" / "data" / "calendar")
    event = next(iter(Calendar.from_ical(ics.read_bytes()).walk("VEVENT")))
    assert str(event["UID"]).startswith(booking.booking_id)
    assert outcome.confirmation.delivery == "smtp" and outcome.confirmation.server.endswith(
        str(port)
    )
    (mail,) = inbox.messages
    assert mail["To"] == booking.passenger.email and "BOS -> ORD" in str(mail["Subject"])
    attachments = [p.get_content_type() for p in mail.iter_attachments()]
    assert attachments == ["text/calendar"]


async def test_writer_killed_mid_task_is_reassigned_and_completes_once(
    tmp_path: Path, wire: Any
) -> None:
    """writer-1 hangs inside its model call and is SIGKILLed; writer-2 finishes the task."""
    fleet_file = tmp_path / "fleet.toml"
    table = wire_llm_table(wire.url, "openai")
    fleet_file.write_text(_toml(table))
    article = "# Dedup\n\nJetStream drops repeated message ids [1]. Keys make effects once [2]."
    wire.script("m-medium", wire.slow(30.0, article), wire.ok(article))
    writer_env = {"NATSFLEET_FLEET_FILE": str(fleet_file), "WIRE_KEY": "k"}
    supervisor = {"timeouts": {"heartbeat_timeout_s": 1.0}}
    async with DemoFleet(
        tmp_path / "run", agents=("researcher",), agent_env={"writer": writer_env},
        supervisor_config=supervisor,
    ) as fleet:  # fmt: skip
        first = await fleet.start_agent("writer", "writer-1")
        findings = await fleet.client.result(
            await fleet.client.submit("research", ResearchInput(question=QUESTION)), Findings, 30
        )
        task_id = await fleet.client.submit("write", WriteInput(findings=findings))
        await _until(lambda: wire.count("m-medium") >= 1, 30)
        first.signal(signal.SIGKILL)
        await fleet.start_agent("writer", "writer-2")
        draft = await fleet.client.result(task_id, Draft, timeout_s=60)
        record = await fleet.client.status(task_id)
    assert draft.title == "Dedup" and draft.model == "m-medium"
    assert record.state == TaskState.COMPLETED and record.instance_id == "writer-2"
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
