"""Read a task's spans back from the SPANS stream and arrange them as a tree.

Processes publish their finished spans on `spans.<service>` when
`NATSFLEET_TRACE_NATS=1`; `natsfleet trace TASK_ID` uses this module to show
one task's trace (or a workflow's) without Jaeger.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from nats.js import api as js_api

from natsfleet.bus.connection import Bus
from natsfleet.protocols import Codec, ProtocolError, SpanRecord, Stream
from natsfleet.telemetry.tracing import TASK_ID_ATTRIBUTE, WORKFLOW_ID_ATTRIBUTE

_SPAN = Codec[SpanRecord](SpanRecord)


@dataclass(slots=True)
class SpanNode:
    span: SpanRecord
    children: list["SpanNode"] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return (self.span.end_ns - self.span.start_ns) / 1e6


async def read_spans(bus: Bus, fetch_timeout_s: float = 1.0) -> list[SpanRecord]:
    """Every span currently kept in the SPANS stream (bounded by its retention)."""
    stream = bus.subjects.stream(Stream.SPANS)
    info = await bus.js.stream_info(stream)
    if info.state.messages == 0:
        return []
    last = info.state.last_seq
    sub = await bus.js.subscribe(
        bus.subjects.all_spans(),
        stream=stream,
        ordered_consumer=True,
        deliver_policy=js_api.DeliverPolicy.ALL,
    )
    spans: list[SpanRecord] = []
    try:
        while True:
            msg = await sub.next_msg(timeout=fetch_timeout_s)
            try:
                spans.append(_SPAN.decode(msg.data))
            except ProtocolError:
                pass  # not a span: nothing to draw
            if msg.metadata.sequence.stream >= last:
                return spans
    finally:
        await sub.unsubscribe()


def spans_of_task(spans: Iterable[SpanRecord], task_id: str) -> list[SpanRecord]:
    """All spans of every trace that a span tagged with `task_id` belongs to."""
    spans = list(spans)
    traces = {
        s.trace_id
        for s in spans
        if s.attributes.get(TASK_ID_ATTRIBUTE) == task_id
        or s.attributes.get(WORKFLOW_ID_ATTRIBUTE) == task_id
    }
    return [s for s in spans if s.trace_id in traces]


def build_tree(spans: Iterable[SpanRecord]) -> list[SpanNode]:
    """Roots (spans whose parent is not among them), children by start time."""
    nodes = {s.span_id: SpanNode(s) for s in spans}
    children: dict[str, list[SpanNode]] = defaultdict(list)
    roots: list[SpanNode] = []
    for node in nodes.values():
        parent = node.span.parent_id
        if parent is not None and parent in nodes:
            children[parent].append(node)
        else:
            roots.append(node)
    for span_id, kids in children.items():
        nodes[span_id].children = sorted(kids, key=lambda n: n.span.start_ns)
    return sorted(roots, key=lambda n: n.span.start_ns)
