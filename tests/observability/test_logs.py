"""Log lines carry the task, attempt, trace and span ids."""

import json
import logging
from typing import Any

import pytest

from natsfleet.telemetry import logs, tracing


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]) -> Any:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield capsys
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_task_and_trace(captured: Any, spans: Any) -> None:
    logs.setup_logging("natsfleet-test", env={"NATSFLEET_LOG_FORMAT": "json"})
    tracer = tracing.tracer()
    assert tracer is not None
    with tracer.start_as_current_span("work") as span, logs.task_scope(task_id="T1", attempt=2):
        logging.getLogger("natsfleet.test").warning("did %s", "it", extra={"skill": "echo"})
    line = json.loads(captured.readouterr().err.strip().splitlines()[-1])
    assert line["msg"] == "did it" and line["level"] == "WARNING"
    assert line["task_id"] == "T1" and line["attempt"] == 2 and line["skill"] == "echo"
    assert line["service"] == "natsfleet-test"
    assert line["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert line["span_id"] == f"{span.get_span_context().span_id:016x}"


def test_text_lines_show_fields_only_when_present(captured: Any) -> None:
    logs.setup_logging("natsfleet-test", env={})
    logging.getLogger("natsfleet.test").warning("plain")
    with logs.task_scope(task_id="T9", attempt=1):
        logging.getLogger("natsfleet.test").warning("scoped")
    plain, scoped = captured.readouterr().err.strip().splitlines()[-2:]
    assert plain.endswith("natsfleet.test: plain")
    assert "natsfleet.test [task_id=T9 attempt=1]: scoped" in scoped
