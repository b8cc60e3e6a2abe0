"""OpenTelemetry metrics setup, in one place like tracing.

Off by default: without configuration no MeterProvider is installed and every
instrument is OpenTelemetry's no-op. On with `OTEL_EXPORTER_OTLP_ENDPOINT`
(or `..._METRICS_ENDPOINT`; `OTEL_METRICS_EXPORTER=none` turns OTLP off) and/or
a Prometheus scrape endpoint asked for with a port (the supervisor's
`--metrics-port`).
"""

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricReader

log = logging.getLogger(__name__)

_configured = False


def wants_otlp_metrics(env: Mapping[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if env.get("OTEL_METRICS_EXPORTER", "otlp").lower() in ("none", ""):
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    )


def configure_metrics(
    service_name: str,
    instance_id: str = "",
    *,
    prometheus_port: int | None = None,
    prometheus_host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
) -> bool:
    """Install a MeterProvider if anything asks for metrics; returns whether one is on."""
    global _configured
    if _configured:
        return True
    env = os.environ if env is None else env
    readers: list[MetricReader] = []
    if wants_otlp_metrics(env):
        readers.append(_otlp_reader(env))
    if prometheus_port is not None:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import start_http_server

        start_http_server(prometheus_port, addr=prometheus_host)
        readers.append(PrometheusMetricReader())
        log.info("metrics at http://%s:%d/metrics", prometheus_host, prometheus_port)
    if not readers:
        return False
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource

    attributes = {"service.name": env.get("OTEL_SERVICE_NAME") or service_name}
    if instance_id:
        attributes["service.instance.id"] = instance_id
    metrics.set_meter_provider(
        MeterProvider(resource=Resource.create(attributes), metric_readers=readers)
    )
    _configured = True
    return True


def _otlp_reader(env: Mapping[str, str]) -> "MetricReader":
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    protocol = (
        env.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[assignment]
            OTLPMetricExporter,
        )
    return PeriodicExportingMetricReader(OTLPMetricExporter())
