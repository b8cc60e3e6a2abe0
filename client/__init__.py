"""natsfleet.client: the fleet seen from outside the supervisor.

`FleetClient` submits tasks and workflows, waits for them, follows their
events and output, and calls the supervisor's control API. The CLI, agents'
`ctx.call`, tests and the gateways use it; it sits above `natsfleet.bus`.
"""

from natsfleet.client.errors import IdempotencyKeyMismatch, TaskFailed, TaskRejected, WaitTimeout
from natsfleet.client.fleet import FleetClient, idempotency_bucket_key
from natsfleet.client.output import OutputItem

__all__ = [
    "FleetClient",
    "IdempotencyKeyMismatch",
    "OutputItem",
    "TaskFailed",
    "TaskRejected",
    "WaitTimeout",
    "idempotency_bucket_key",
]
