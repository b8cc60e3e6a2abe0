"""natsfleet.supervisor.workflows: DAGs of skills run as ordinary tasks by the supervisor.

Declare workflows in TOML (`load([...folders or files])`) or in Python
(`Workflow` builder); see docs/workflows.md for the format, the reference
syntax, fan-out, loops, approvals, deadlines and budgets. A step is one of
the kinds `TaskStep`, `FanOutStep`, `ApprovalStep` (the union `Step`).
"""

from natsfleet.supervisor.workflows.builder import StepHandle, Workflow, ref
from natsfleet.supervisor.workflows.errors import (
    UnresolvedReference,
    WorkflowDefinitionError,
    WorkflowError,
)
from natsfleet.supervisor.workflows.loader import Catalog, load, load_file, parse_toml
from natsfleet.supervisor.workflows.model import (
    MAX_ROUNDS,
    ApprovalStep,
    FanOutStep,
    LoopDef,
    Step,
    TaskStep,
    Until,
    WorkflowDef,
)
from natsfleet.supervisor.workflows.validate import Graph, check

__all__ = [
    "MAX_ROUNDS",
    "ApprovalStep",
    "Catalog",
    "FanOutStep",
    "Graph",
    "LoopDef",
    "Step",
    "StepHandle",
    "TaskStep",
    "UnresolvedReference",
    "Until",
    "Workflow",
    "WorkflowDef",
    "WorkflowDefinitionError",
    "WorkflowError",
    "check",
    "load",
    "load_file",
    "parse_toml",
    "ref",
]
