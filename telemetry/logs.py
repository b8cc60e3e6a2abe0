"""Structured logs for every natsfleet process.

One line per record, carrying the task id and attempt (when a task is in
scope) and the trace and span ids (when tracing is on), as text by default or
as JSON with `NATSFLEET_LOG_FORMAT=json`. `NATSFLEET_LOG` sets the level.
"""

import contextvars
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from natsfleet.telemetry import redact, tracing

#: Task fields for every log line written while a task is being handled.
_task_fields: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "natsfleet_log_task", default=None
)

# Fields a record may carry (from a LoggerAdapter's extra or the context).
_FIELDS = ("task_id", "attempt", "token", "instance_id", "skill", "workflow_id")
# Attributes every LogRecord has; anything else was passed as `extra`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


@contextmanager
def task_scope(**fields: Any) -> Iterator[None]:
    """Log lines inside carry these fields (task_id, attempt, ...)."""
    token = _task_fields.set({**(_task_fields.get() or {}), **fields})
    try:
        yield
    finally:
        _task_fields.reset(token)


class ContextFilter(logging.Filter):
    """Adds task fields from the context and trace ids from the current span."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        for key, value in (_task_fields.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        ids = tracing.current_ids()
        if ids is not None:
            record.trace_id, record.span_id = ids
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(fields)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"{key}={getattr(record, key)}" for key in _FIELDS if hasattr(record, key)]
        if hasattr(record, "trace_id"):
            parts.append(f"trace={record.trace_id}")
        record.fields = f" [{' '.join(parts)}]" if parts else ""
        # The whole line: message, exception text and fields alike.
        return redact.redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": redact.redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "fields" and not key.startswith("_"):
                kept = value if isinstance(value, int | float | bool) else str(value)
                line[key] = redact.redact(kept) if isinstance(kept, str) else kept
        if record.exc_info:
            line["exc"] = redact.redact(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exc"] = redact.redact(record.exc_text)
        if record.stack_info:
            line["stack"] = redact.redact(self.formatStack(record.stack_info))
        return json.dumps(line, separators=(",", ":"))


def setup_logging(
    service: str, *, level: str | int | None = None, env: Mapping[str, str] | None = None
) -> None:
    """Configure the root logger for a natsfleet process (stderr). Idempotent."""
    env = os.environ if env is None else env
    redact.load_environment(env)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_natsfleet", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._natsfleet = True  # type: ignore[attr-defined]
    json_lines = env.get("NATSFLEET_LOG_FORMAT", "text").lower() == "json"
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.addFilter(ContextFilter(service))
    root.addHandler(handler)
    root.setLevel(level if level is not None else env.get("NATSFLEET_LOG", "INFO").upper())


def setup_process(service: str, instance_id: str = "", *, level: str | int | None = None) -> bool:
    """Logging, tracing and (OTLP) metrics for one natsfleet process; returns
    whether tracing is on."""
    from natsfleet.telemetry.metrics import configure_metrics

    setup_logging(service, level=level)
    configure_metrics(service, instance_id)
    return tracing.configure(service, instance_id)
