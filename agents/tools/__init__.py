"""natsfleet.agents.tools: the domain tools the built-in agents use.

`research` (passages with sources), `travel` (the booker's airports, fares,
booking, payment, calendar and mail) and `editing` (deterministic draft
checks). Tools are plain async functions and small classes with typed
msgspec inputs and outputs; their errors derive from `ToolError`.
"""

from natsfleet.agents.tools.editing import (
    EditCriteria,
    EditIssue,
    IssueKind,
    check_banned_phrases,
    check_citations,
    check_draft,
    check_length,
    cited_numbers,
    count_words,
)
from natsfleet.agents.tools.errors import (
    AmountMismatchError,
    ApprovalRequiredError,
    CorpusError,
    IdempotencyConflictError,
    InvalidQueryError,
    MailError,
    NotConfiguredError,
    ProviderError,
    ToolError,
    TripRequestError,
    UnknownAirportError,
    UnknownOfferError,
)

__all__ = [
    "AmountMismatchError",
    "ApprovalRequiredError",
    "CorpusError",
    "EditCriteria",
    "EditIssue",
    "IdempotencyConflictError",
    "InvalidQueryError",
    "IssueKind",
    "MailError",
    "NotConfiguredError",
    "ProviderError",
    "ToolError",
    "TripRequestError",
    "UnknownAirportError",
    "UnknownOfferError",
    "check_banned_phrases",
    "check_citations",
    "check_draft",
    "check_length",
    "cited_numbers",
    "count_words",
]
