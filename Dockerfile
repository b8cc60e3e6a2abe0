# natsfleet: one image for the supervisor and every agent (the command picks the role).
#   docker build -t natsfleet:latest .
#   docker run --rm -e NATS_URL=nats://nats:4222 natsfleet:latest supervisor
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY protocols protocols
COPY telemetry telemetry
COPY process process
COPY bus bus
COPY client client
COPY supervisor supervisor
COPY agents agents
COPY deploy deploy
COPY gateway gateway
COPY cli cli
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 natsfleet
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER natsfleet
WORKDIR /home/natsfleet
# SIGTERM drains (agents hand back or finish work); give containers the grace.
STOPSIGNAL SIGTERM
ENTRYPOINT ["natsfleet"]
CMD ["--help"]
