"""The gateway's own errors (configuration it refuses to start with)."""

from natsfleet.protocols import NatsFleetError


class GatewayError(NatsFleetError):
    """A gateway setting is unusable: the process exits 2 before serving."""

    retryable = False
    exit_code = 2
