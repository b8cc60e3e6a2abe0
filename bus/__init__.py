"""natsfleet.bus: the NATS connection every natsfleet process uses.

Typed publish / request / subscribe over nats-py with msgspec, dead-lettering
of malformed messages, transparent blob offload, pull consumption and
idempotent provisioning of the fleet's JetStream assets. `FleetClient` is in
`natsfleet.client`, the embedded nats-server in `natsfleet.process`, tracing
and logs in `natsfleet.telemetry`.
"""

from natsfleet.bus.acks import StreamAck
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
    "Handler",
    "HeaderHook",
    "Incoming",
    "NoResponders",
    "NotConnected",
    "RequestTimeout",
    "StorageConfig",
    "StreamAck",
    "Subscription",
    "Unreachable",
    "provision",
]
