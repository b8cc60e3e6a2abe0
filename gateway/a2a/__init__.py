"""natsfleet.gateway.a2a: the fleet as an A2A agent (`natsfleet gateway a2a`).

See docs/interop.md. Stateless: any replica answers any request about any
task, from the fleet's KV and streams.
"""

from natsfleet.gateway.a2a.app import build_app, serve
from natsfleet.gateway.a2a.card import CardSettings, CardSource, build_card
from natsfleet.gateway.a2a.handler import FleetRequestHandler, HandlerSettings
from natsfleet.gateway.a2a.mapping import Origin, Target, target_of
from natsfleet.gateway.a2a.store import FleetTaskStore

__all__ = [
    "CardSettings",
    "CardSource",
    "FleetRequestHandler",
    "FleetTaskStore",
    "HandlerSettings",
    "Origin",
    "Target",
    "build_app",
    "build_card",
    "serve",
    "target_of",
]
