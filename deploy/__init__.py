"""natsfleet.deploy: the fleet file, `natsfleet up`, and generated process-manager configs."""

from natsfleet.deploy.control import (
    ProcessRow,
    bring_down,
    detach_command,
    ps_rows,
    running_state,
    start_detached,
)
from natsfleet.deploy.errors import DeployError, FleetFileError, NotRunning
from natsfleet.deploy.fleetfile import (
    AgentSection,
    Fleet,
    FleetFile,
    load_fleet,
    parse_fleet,
)
from natsfleet.deploy.launcher import Launcher
from natsfleet.deploy.logsink import LineSink, PrefixedWriter
from natsfleet.deploy.plan import Kind, ProcessSpec, plan
from natsfleet.deploy.restart import RestartIntensity

__all__ = [
    "AgentSection",
    "DeployError",
    "Fleet",
    "FleetFile",
    "FleetFileError",
    "Kind",
    "Launcher",
    "LineSink",
    "NotRunning",
    "PrefixedWriter",
    "ProcessRow",
    "ProcessSpec",
    "RestartIntensity",
    "bring_down",
    "detach_command",
    "load_fleet",
    "parse_fleet",
    "plan",
    "ps_rows",
    "running_state",
    "start_detached",
]
