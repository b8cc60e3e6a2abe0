"""An agent that tries hard to leak its API key, for tests/security/test_secrets.py.

Run as `natsfleet agent run tests.secret_agents:LeakyAgent` with
`ANTHROPIC_API_KEY` set: its one skill puts the key in a log line (message,
extra field and exception), on its span (attribute, event, exception) and in
the exception that fails the task.
"""

import logging
import os

import msgspec
from opentelemetry import trace

from natsfleet.agents import Agent, SkillError, TaskContext, skill
from tests.fleet_agents import FAST

log = logging.getLogger(__name__)


class Call(msgspec.Struct, frozen=True, kw_only=True):
    prompt: str


class Never(msgspec.Struct, frozen=True):
    pass


class ProviderRefused(SkillError):
    """What a provider client might raise, with the request's key in its message."""


class LeakyAgent(Agent):
    name = "leaky"
    config = FAST

    @skill
    async def call_model(self, input: Call, ctx: TaskContext) -> Never:
        """Fail the way a careless provider client would."""
        key = os.environ["ANTHROPIC_API_KEY"]
        password = os.environ.get("NATS_PASSWORD", "")
        span = trace.get_current_span()
        span.set_attribute("http.request.header.x-api-key", key)
        span.add_event("request", {"authorization": f"Bearer {key}", "nats": password})
        try:
            raise ConnectionError(f"401 Unauthorized for x-api-key={key} (nats {password})")
        except ConnectionError as exc:
            span.record_exception(exc)
            log.exception("provider call failed", extra={"api_key": key, "headers": {"k": key}})
            raise ProviderRefused(f"invalid x-api-key {key}: {exc}", retryable=False) from exc
