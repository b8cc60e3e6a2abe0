"""Errors of the deploy package: a bad fleet file, a launcher that cannot run."""

from natsfleet.protocols import NatsFleetError


class DeployError(NatsFleetError):
    """Something in `natsfleet up/down/ps/deploy` failed; the message says what."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class FleetFileError(DeployError):
    """The fleet file is not valid: `key` names where (a TOML key path), `problem` what."""

    def __init__(self, path: str, key: str, problem: str) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {problem}")


class NotRunning(DeployError):
    """No `natsfleet up` is running for this state directory."""
