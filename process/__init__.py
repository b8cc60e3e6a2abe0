"""natsfleet.process: what a natsfleet OS process needs besides its connection.

The event loop it runs on (`loop`), the embedded nats-server launcher
(`server`) and the `module:attr` resolver that loads user code into it
(`specs`). Imports nothing of natsfleet but `natsfleet.protocols`.
"""

from natsfleet.process.server import (
    NatsServer,
    ServerError,
    find_nats_server,
    shared_gomaxprocs,
    start_nats_server,
)

__all__ = [
    "NatsServer",
    "ServerError",
    "find_nats_server",
    "shared_gomaxprocs",
    "start_nats_server",
]
