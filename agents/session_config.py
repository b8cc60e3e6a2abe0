"""How an agent's loops use sessions (docs/tools.md, "Sessions"); part of `AgentConfig`.

Outside the loop package, so an agent that never runs a loop does not import it.
"""

import msgspec


class SessionConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How an agent's loops use sessions.

    Attributes:
        budget_tokens: A session's conversation is compacted to stay within
            this many tokens (estimated as characters / 4).
        keep_fraction: After a compaction, the newest exchanges kept whole fill
            at most this share of the budget; a summary replaces the others.
        lock_ttl_s: A session lock not refreshed for this long (as seen by
            the task waiting for it: no clocks compared) is taken over.
        wait_s: The longest a task waits for a session another task holds
            (also bounded by its deadline); then a retryable `SessionBusyError`.
    """

    budget_tokens: int = 8_000
    keep_fraction: float = 0.5
    lock_ttl_s: float = 30.0
    wait_s: float = 60.0

    def __post_init__(self) -> None:
        if self.budget_tokens < 64:
            raise ValueError("budget_tokens must be at least 64")
        if not 0 <= self.keep_fraction < 1:
            raise ValueError("keep_fraction must be in [0, 1)")
        if self.lock_ttl_s <= 0 or self.wait_s < 0:
            raise ValueError("lock_ttl_s must be positive and wait_s not negative")
