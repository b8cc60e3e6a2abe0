"""Whether a run may start: a known workflow, the input it requires, live skills.

Skills are judged at submit time against what live agents announced (their
Hello), like a plain task's skill: a workflow file may name skills of agents
that are not deployed yet, and loading it must not depend on who is up. A run
submitted with `queue=True` skips the check and its steps wait for agents.
"""

from typing import Any

import msgspec

from natsfleet.protocols import ErrorInfo, Submit, Timeouts
from natsfleet.supervisor.registry import Registry
from natsfleet.supervisor.workflows.loader import Catalog
from natsfleet.supervisor.workflows.model import WorkflowDef

_FALLBACK_DEADLINE_S = 3_600.0


def admission_error(submit: Submit, catalog: Catalog, registry: Registry) -> ErrorInfo | None:
    """Why the run must be rejected, or None."""
    name = submit.workflow or ""
    defn = catalog.get(name)
    if defn is None:
        known = ", ".join(catalog.names()) or "none loaded"
        detail = f"unknown workflow {name!r} (known: {known})"
        return ErrorInfo(error_type="unknown_workflow", detail=detail, retryable=False)
    if defn.required_input:
        try:
            value: Any = msgspec.json.decode(submit.input)
        except msgspec.DecodeError:
            value = None
        present = value if isinstance(value, dict) else {}
        missing = [key for key in defn.required_input if key not in present]
        if missing:
            detail = f"input lacks {', '.join(missing)} (required by workflow {name!r})"
            return ErrorInfo(error_type="bad_input", detail=detail, retryable=False)
    if not submit.queue:
        absent = [(s, step) for s, step in defn.skills().items() if not registry.offers(s)]
        if absent:
            listed = ", ".join(f"{s!r} (step {step!r})" for s, step in absent)
            detail = f"unknown skill {listed}: no live agent offers it"
            return ErrorInfo(error_type="unknown_skill", detail=detail, retryable=False)
    return None


def run_deadline_s(submit: Submit, defn: WorkflowDef, defaults: Timeouts) -> float:
    """The submitter's schedule_to_close, else the workflow's deadline, else the fleet's."""
    for value in (submit.timeouts.schedule_to_close_s, defn.deadline_s):
        if value is not None:
            return value
    return defaults.schedule_to_close_s or _FALLBACK_DEADLINE_S
