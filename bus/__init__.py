"""natsfleet.bus: the NATS connection every natsfleet process uses.

Typed publish / request / subscribe over nats-py with msgspec, dead-lettering
of malformed messages, transparent blob offload, idempotent provisioning of
the fleet's JetStream assets, and the embedded nats-server launcher.
"""

from natsfleet.bus.acks import StreamAck
from natsfleet.bus.client import (
    FleetClient,
    IdempotencyKeyMismatch,
    TaskFailed,
    TaskRejected,
    WaitTimeout,
    idempotency_bucket_key,
)
from natsfleet.bus.config import DEFAULT_URL, BusConfig
from natsfleet.bus.connection import Bus, HeaderHook
from natsfleet.bus.errors import (
    BadNatsConfig,
    BusError,
    ConnectionLost,
    NoResponders,
    NotConnected,
    RequestTimeout,
    Unreachable,
)
from natsfleet.bus.incoming import Incoming
from natsfleet.bus.provision import StorageConfig, provision
from natsfleet.bus.server import (
    NatsServer,
    ServerError,
    find_nats_server,
    shared_gomaxprocs,
    start_nats_server,
)
from natsfleet.bus.stats import BusStats
from natsfleet.bus.subscription import Handler, Subscription

__all__ = [
    "DEFAULT_URL",
    "BadNatsConfig",
    "Bus",
    "BusConfig",
    "BusError",
    "BusStats",
    "ConnectionLost",
    "FleetClient",
    "Handler",
    "HeaderHook",
    "IdempotencyKeyMismatch",
    "Incoming",
    "NatsServer",
    "NoResponders",
    "NotConnected",
    "RequestTimeout",
    "ServerError",
    "StorageConfig",
    "StreamAck",
    "Subscription",
    "TaskFailed",
    "TaskRejected",
    "Unreachable",
    "WaitTimeout",
    "find_nats_server",
    "idempotency_bucket_key",
    "provision",
    "shared_gomaxprocs",
    "start_nats_server",
]
