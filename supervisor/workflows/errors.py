"""Typed errors of the workflow engine."""

from natsfleet.protocols import NatsFleetError


class WorkflowError(NatsFleetError):
    """A workflow could not be loaded, validated or run."""

    def __init__(self, detail: str, *, retryable: bool = False) -> None:
        self.detail = detail
        self.retryable = retryable
        super().__init__(detail)


class WorkflowDefinitionError(WorkflowError):
    """A workflow definition is invalid; `problems` lists every reason found."""

    def __init__(self, workflow: str, problems: list[str], *, source: str = "") -> None:
        self.workflow = workflow
        self.problems = list(problems)
        self.source = source
        where = f" ({source})" if source else ""
        listed = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"workflow {workflow!r}{where} is invalid:\n{listed}")


class UnresolvedReference(WorkflowError):
    """A `${...}` reference could not be resolved while a run was going."""

    def __init__(self, reference: str, why: str) -> None:
        self.reference = reference
        super().__init__(f"${{{reference}}}: {why}")
