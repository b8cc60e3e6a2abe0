"""Every subject, stream and bucket name, built from one configurable prefix.

Nothing else in natsfleet spells a subject: the auth generator and the docs
derive from this module (docs/protocol.md, "Subjects"
and "Streams, buckets, object store").
"""

import re
from dataclasses import dataclass
from enum import StrEnum

from natsfleet.protocols.limits import check_id

DEFAULT_PREFIX = "natsfleet"
# With ids of at most 128 characters (protocols/limits.py), every subject and
# reply inbox stays far below nats-server's 4 KiB protocol line.
PREFIX_MAX_CHARS = 128

_PREFIX = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")


class Stream(StrEnum):
    TASKS = "TASKS"
    RESULTS = "RESULTS"
    EVENTS = "EVENTS"
    DLQ = "DLQ"
    SPANS = "SPANS"
    # Agents' partial output and progress, kept for late and returning watchers.
    OUTPUT = "OUTPUT"


class Bucket(StrEnum):
    STATE = "STATE"
    IDEM = "IDEM"
    AGENTS = "AGENTS"
    LEASES = "LEASES"
    CACHE = "CACHE"
    WORKFLOWS = "WORKFLOWS"
    # The fleet-wide LLM governor: rate schedules, budgets, deployment health.
    GOVERNOR = "GOVERNOR"
    # The agent loop's journal (agents/loop/journal.py, docs/tools.md).
    JOURNAL = "JOURNAL"
    # Conversations that outlive one task (agents/loop/session.py, docs/tools.md).
    SESSIONS = "SESSIONS"


OBJECT_STORE = "BLOBS"


def check_token(value: str, what: str = "name") -> str:
    """Return `value` if it is usable as one subject token (the id rule of
    protocols/limits.py), else raise `InvalidValue` (a ValueError)."""
    return check_id(value, f"{what} (a subject token)")


@dataclass(frozen=True, slots=True)
class Subjects:
    """Subject names for one fleet (one prefix)."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        # fullmatch: `$` would let a final newline through into every subject.
        if not _PREFIX.fullmatch(self.prefix) or len(self.prefix) > PREFIX_MAX_CHARS:
            raise ValueError(
                f"subject prefix {self.prefix!r} is not a valid NATS subject"
                f" of at most {PREFIX_MAX_CHARS} characters"
            )

    # client -> stream TASKS
    def submit(self) -> str:
        return f"{self.prefix}.submit"

    # agent -> supervisor
    def hello(self, agent: str, instance: str) -> str:
        return f"{self.prefix}.agent.{agent}.{instance}.hello"

    def bye(self, agent: str, instance: str) -> str:
        return f"{self.prefix}.agent.{agent}.{instance}.bye"

    def heartbeat(self, agent: str, instance: str) -> str:
        return f"{self.prefix}.agent.{agent}.{instance}.hb"

    def announcements(self) -> str:
        """Wildcard over every instance's subjects: note it also matches
        `.assign` and `.cancel`; subscribe to `announcement_subjects()`."""
        return f"{self.prefix}.agent.*.*.*"

    def announcement_subjects(self) -> list[str]:
        """The three wildcards for every instance's hello, heartbeat and bye only."""
        return [f"{self.prefix}.agent.*.*.{kind}" for kind in ("hello", "hb", "bye")]

    def rollcall(self) -> str:
        """Supervisor -> all instances: say hello again."""
        return f"{self.prefix}.agent.rollcall"

    def announcement_kind(self, subject: str) -> str:
        """`hello`, `hb` or `bye` for an announcement subject."""
        return subject.rsplit(".", 1)[-1]

    # supervisor -> one instance. One token deeper than the announcements, so
    # `announcements()` never matches an Assign or Cancel: a supervisor
    # subscribed to it would otherwise receive its own requests, dead-letter
    # them and answer them with an ErrorReply that races the agent's reply.
    def assign(self, agent: str, instance: str) -> str:
        return f"{self.prefix}.agent.{agent}.{instance}.in.assign"

    def cancel(self, agent: str, instance: str) -> str:
        return f"{self.prefix}.agent.{agent}.{instance}.in.cancel"

    def inbox(self, agent: str, instance: str) -> str:
        """Wildcard for one instance's assign and cancel."""
        return f"{self.prefix}.agent.{agent}.{instance}.in.*"

    # agent -> stream RESULTS
    def result(self, agent: str, instance: str) -> str:
        return f"{self.prefix}.result.{agent}.{instance}"

    def results(self) -> str:
        return f"{self.prefix}.result.>"

    def result_source(self, subject: str) -> tuple[str, str] | None:
        """(agent type, instance) of a `result.<type>.<inst>` subject, else None.

        The subject is what the sender's credentials allowed it to publish on,
        unlike the outcome's own `agent` and `instance_id` fields.
        """
        head = f"{self.prefix}.result."
        if not subject.startswith(head):
            return None
        parts = subject[len(head) :].split(".")
        if len(parts) != 2 or not all(parts):
            return None
        return parts[0], parts[1]

    # agent -> watchers
    def output(self, agent: str, instance: str, task_id: str) -> str:
        return f"{self.prefix}.out.{agent}.{instance}.{task_id}"

    def task_output(self, task_id: str) -> str:
        """Wildcard for one task's output, whichever instance runs it."""
        return f"{self.prefix}.out.*.*.{task_id}"

    def all_output(self) -> str:
        return f"{self.prefix}.out.>"

    # supervisor -> stream EVENTS
    def events(self, task_id: str) -> str:
        return f"{self.prefix}.events.{task_id}"

    def all_events(self) -> str:
        return f"{self.prefix}.events.>"

    # client -> supervisor (request)
    def control(self, verb: str) -> str:
        return f"{self.prefix}.ctl.{verb}"

    def all_control(self) -> str:
        return f"{self.prefix}.ctl.*"

    # any -> stream DLQ
    def dlq(self, reason: str) -> str:
        return f"{self.prefix}.dlq.{reason}"

    def all_dlq(self) -> str:
        return f"{self.prefix}.dlq.>"

    # any -> stream SPANS
    def spans(self, service: str) -> str:
        return f"{self.prefix}.spans.{service}"

    def all_spans(self) -> str:
        return f"{self.prefix}.spans.>"

    # replies
    def reply_inbox(self, role: str, instance: str) -> str:
        """Per-role inbox prefix, so permissions can confine replies."""
        return f"_INBOX.{self.prefix}.{role}.{instance}"

    # JetStream names: stream and bucket names cannot hold dots, so they are
    # derived from the prefix (`natsfleet` -> `NATSFLEET_TASKS`).
    @property
    def _name_base(self) -> str:
        return re.sub(r"[^A-Za-z0-9]", "_", self.prefix).upper()

    def stream(self, stream: Stream) -> str:
        return f"{self._name_base}_{stream.value}"

    def bucket(self, bucket: Bucket) -> str:
        return f"{self._name_base}_{bucket.value}"

    def object_store(self) -> str:
        return f"{self._name_base}_{OBJECT_STORE}"

    def stream_subjects(self, stream: Stream) -> list[str]:
        return {
            Stream.TASKS: [self.submit()],
            Stream.RESULTS: [self.results()],
            Stream.EVENTS: [self.all_events()],
            Stream.DLQ: [self.all_dlq()],
            Stream.SPANS: [self.all_spans()],
            Stream.OUTPUT: [self.all_output()],
        }[stream]
