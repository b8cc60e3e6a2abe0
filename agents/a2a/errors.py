"""Typed errors of the A2A client: what went wrong with a remote agent.

Each says whether another try could succeed (`retryable`): a remote agent that
cannot be reached may be back soon; one that answered failed, rejected or
canceled said so itself, and asking again would get the same answer.
"""

from natsfleet.agents.errors import AgentError


class A2AClientError(AgentError):
    """Root of the errors of `natsfleet.agents.a2a`."""

    retryable = False

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        self.detail = detail
        super().__init__(f"A2A agent {url}: {detail}")


class CardUnavailable(A2AClientError):
    """The Agent Card could not be fetched or read (bad URL, no server, not a card)."""


class RemoteUnavailable(A2AClientError):
    """The remote agent could not be reached, or the connection broke mid-task."""

    retryable = True


class RemoteProtocolError(A2AClientError):
    """The remote agent refused the request (an A2A error) or answered nonsense."""


class RemoteTaskEnded(A2AClientError):
    """The remote task ended without completing: failed, rejected, canceled, or
    waiting for input or authentication this client cannot give."""

    def __init__(self, url: str, task_id: str, state: str, reason: str) -> None:
        self.task_id = task_id
        self.state = state
        self.reason = reason
        why = f": {reason}" if reason else ""
        super().__init__(url, f"remote task {task_id} {state}{why}")
