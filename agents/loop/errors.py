"""Loop-level failures: the only errors that end a skill's loop.

A tool's own failure is never one of these: it becomes a tool result the
model sees (`tools.ToolFailure`). These end the skill with a typed `Failure`
(their class name is its `error_type`).
"""

from natsfleet.agents.errors import SkillError


class LoopError(SkillError):
    """Root of the agent loop's errors."""


class MaxTurnsExceededError(LoopError):
    """The model still wanted tools after `max_turns` answers.

    Not retryable: another attempt replays the same journal to the same place.
    """

    def __init__(self, max_turns: int) -> None:
        self.max_turns = max_turns
        super().__init__(f"no final answer within {max_turns} turns", retryable=False)


class LoopDeadlineError(LoopError):
    """The attempt's deadline left no time for the next model call.

    Retryable: a later attempt replays the journal and goes on from there.
    """

    def __init__(self, turn: int) -> None:
        self.turn = turn
        super().__init__(f"deadline reached before turn {turn}", retryable=True)


class InvalidOutputError(LoopError):
    """The final answer did not validate as the output type, even after one correction."""

    def __init__(self, type_name: str, detail: str) -> None:
        self.type_name = type_name
        self.detail = detail
        super().__init__(f"final answer is not a valid {type_name}: {detail}", retryable=False)


class JournalError(LoopError):
    """The journal could not be read or written: retryable for NATS trouble, not
    for an entry that cannot be decoded or stored (another attempt meets it too)."""

    def __init__(self, detail: str, *, retryable: bool = True) -> None:
        self.detail = detail
        super().__init__(f"journal: {detail}", retryable=retryable)


class JournalFencedError(LoopError):
    """A newer attempt of the task owns its journal: this attempt must stop.

    Not retryable (the newer attempt is the one that goes on); its outcome
    would be refused as stale anyway.
    """

    def __init__(self, task_id: str, token: str, detail: str) -> None:
        self.task_id = task_id
        self.token = token
        super().__init__(
            f"journal of task {task_id} is fenced for token {token}: {detail}",
            retryable=False,
        )


class DuplicateToolError(LoopError):
    """Two tools given to one loop have the same name (the model could not tell
    them apart; an MCP tool's name may clash with another tool's).

    Not retryable: the skill's tool list must change.
    """

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(
            f"two tools with the same name: {', '.join(repr(n) for n in names)}",
            retryable=False,
        )
