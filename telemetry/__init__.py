"""natsfleet.telemetry: what every natsfleet process reports about itself.

Tracing (OpenTelemetry setup and propagation through NATS headers), the span
exporter that publishes spans on NATS, metrics, structured logs and the
redaction of secrets from all of them. It imports nothing of natsfleet but
`natsfleet.protocols`: the bus, the supervisor and the agents use it, never
the other way round (docs/architecture.md, "Packages").
"""
