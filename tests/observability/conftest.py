from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from natsfleet.bus import tracing


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """natsfleet tracing on, into memory, for this test only."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider, "natsfleet-test")
    try:
        yield exporter
    finally:
        tracing.uninstall()
