"""The interface a web-search provider fills in for real deployments.

natsfleet ships no web search: which service to use (and under what terms)
is a deployment's choice. `WebSearchProvider` reads its endpoint and key from
the environment and, until a deployment supplies the request code, refuses
with a typed error rather than pretending to search. To plug in a service,
subclass it (or write any class matching `SearchProvider`) and implement
`_fetch`, mapping each hit to a `Passage` whose `source.location` is the URL.
"""

import os

import msgspec

from natsfleet.agents.tools.errors import NotConfiguredError
from natsfleet.agents.tools.research.types import Passage

ENDPOINT_ENV = "NATSFLEET_WEB_SEARCH_ENDPOINT"
API_KEY_ENV = "NATSFLEET_WEB_SEARCH_API_KEY"


class WebSearchConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Where the web-search service lives; the key is never logged or sent in messages."""

    endpoint: str
    api_key: str = ""
    timeout_s: float = 10.0

    def __repr__(self) -> str:
        return f"WebSearchConfig(endpoint={self.endpoint!r}, api_key=<redacted>)"


class WebSearchProvider:
    """`SearchProvider` stub for a web-search service.

    Args:
        config: Explicit settings; by default read from `$NATSFLEET_WEB_SEARCH_ENDPOINT`
            and `$NATSFLEET_WEB_SEARCH_API_KEY`.

    Raises:
        NotConfiguredError: from `search` when the endpoint or key is unset, or
            when no request code was supplied (this base class).
    """

    name = "web"

    def __init__(self, config: WebSearchConfig | None = None) -> None:
        if config is None:
            config = WebSearchConfig(
                endpoint=os.environ.get(ENDPOINT_ENV, ""), api_key=os.environ.get(API_KEY_ENV, "")
            )
        self.config = config

    @property
    def configured(self) -> bool:
        """True when both the endpoint and the key are set."""
        return bool(self.config.endpoint and self.config.api_key)

    async def search(self, query: str, k: int) -> list[Passage]:
        """Passages from the web for `query`; refuses unless configured and implemented."""
        missing = [
            name
            for name, value in (
                (ENDPOINT_ENV, self.config.endpoint),
                (API_KEY_ENV, self.config.api_key),
            )
            if not value
        ]
        if missing:
            raise NotConfiguredError(self.name, missing)
        return await self._fetch(query, k)

    async def _fetch(self, query: str, k: int) -> list[Passage]:
        """Call the service; a deployment overrides this with its client code."""
        raise NotConfiguredError(self.name, ["a WebSearchProvider subclass implementing _fetch()"])
