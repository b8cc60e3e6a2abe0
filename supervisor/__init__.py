"""natsfleet.supervisor: durable assignment, timeouts, retries, fencing, leases, control API.

Run one with `await Supervisor(SupervisorConfig(), BusConfig.from_env()).run()`
or `natsfleet supervisor`. All state lives in JetStream; see docs/supervisor.md.
"""

from natsfleet.supervisor.config import DEFAULT_TIMEOUTS, SupervisorConfig
from natsfleet.supervisor.errors import NotLeader, RevisionConflict, SupervisorError
from natsfleet.supervisor.lease import Lease, LeaseValue
from natsfleet.supervisor.service import Supervisor

__all__ = [
    "DEFAULT_TIMEOUTS",
    "Lease",
    "LeaseValue",
    "NotLeader",
    "RevisionConflict",
    "Supervisor",
    "SupervisorConfig",
    "SupervisorError",
]
