"""natsfleet.gateway.a2a: the fleet as an A2A agent (`natsfleet gateway a2a`).

See docs/interop.md. Stateless: any replica answers any request about any
task, from the fleet's KV and streams.
"""

from natsfleet.gateway.a2a.app import build_app, serve
from natsfleet.gateway.a2a.auth import BadKeys, KeyAuth, load_keys, parse_keys
from natsfleet.gateway.a2a.card import CardSettings, CardSource, build_card
from natsfleet.gateway.a2a.handler import FleetRequestHandler, HandlerSettings
from natsfleet.gateway.a2a.mapping import Origin, Target, target_of
from natsfleet.gateway.a2a.store import FleetTaskStore

__all__ = [
    "BadKeys",
    "CardSettings",
    "CardSource",
    "FleetRequestHandler",
    "FleetTaskStore",
    "HandlerSettings",
    "KeyAuth",
    "Origin",
    "Target",
    "build_app",
    "build_card",
    "load_keys",
    "parse_keys",
    "serve",
    "target_of",
]
