"""Generators for `natsfleet deploy TARGET`: each returns {relative path: content}."""

from collections.abc import Callable
from pathlib import Path

from natsfleet.deploy.errors import DeployError
from natsfleet.deploy.fleetfile import FleetFile
from natsfleet.deploy.targets import (
    compose,
    kubernetes,
    natsauth,
    natsconf,
    procfile,
    supervisord,
    systemd,
)
from natsfleet.deploy.targets.common import Files, Options

Generator = Callable[[FleetFile, Options], Files]

TARGETS: dict[str, Generator] = {
    "supervisord": supervisord.generate,
    "systemd": systemd.generate,
    "procfile": procfile.generate,
    "compose": compose.generate,
    "kubernetes": kubernetes.generate,
    "nats-cluster": natsconf.generate,
    "nats-auth": natsauth.generate,
}

#: Files holding secrets (NKey seeds): written readable by their owner only.
SECRET_SUFFIXES = (".nk", ".creds")


def generate(target: str, fleet_file: FleetFile, options: Options | None = None) -> Files:
    """The files of `target` for this fleet.

    Raises:
        DeployError: unknown target.
    """
    try:
        generator = TARGETS[target]
    except KeyError:
        raise DeployError(
            f"unknown target {target!r}; choose one of {', '.join(TARGETS)}"
        ) from None
    return generator(fleet_file, options or Options())


def write_files(files: Files, out_dir: Path) -> list[Path]:
    """Write each file under `out_dir` (created); returns the paths written."""
    written = []
    for relative, content in sorted(files.items()):
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        if path.name.endswith(SECRET_SUFFIXES):
            path.chmod(0o600)
        written.append(path)
    return written


__all__ = ["TARGETS", "Files", "Generator", "Options", "generate", "write_files"]
