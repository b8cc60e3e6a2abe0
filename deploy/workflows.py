"""The fleet file's `workflows`: which workflow definitions the supervisors load.

Each entry is a folder (every `*.toml` in it), one `.toml` file, or
`module:attribute` (a Python definition the supervisor imports), the same
sources `natsfleet supervisor --workflows` takes. Paths count from the fleet
file's directory.

`natsfleet up` passes the paths themselves (absolute). A generated target
cannot count on the fleet file's directory, so the files travel with it: each
file is copied into one folder, `workflows/`, beside the generated configs,
and the supervisor gets `--workflows <where that folder is on the target>`.
Module specs are passed as they are (the module must be importable there).
"""

from dataclasses import dataclass
from pathlib import Path

from natsfleet.deploy.errors import FleetFileError

#: The folder the workflow files are copied into, beside the generated configs.
BUNDLE_DIR = "workflows"


@dataclass(frozen=True, slots=True)
class WorkflowSources:
    """What the fleet file's `workflows` names, resolved on this machine."""

    entries: tuple[str, ...]  # each path made absolute; module specs as written
    files: dict[str, Path]  # file name in the bundle -> the file it copies
    modules: tuple[str, ...]  # `module:attribute` specs

    def up_args(self) -> tuple[str, ...]:
        """`--workflows` options for `natsfleet up`'s supervisors (absolute paths)."""
        return _options(self.entries)

    def bundled_args(self, bundle_path: str) -> tuple[str, ...]:
        """`--workflows` options for a generated target whose bundle is at `bundle_path`."""
        return _options(((bundle_path,) if self.files else ()) + self.modules)

    def bundle(self) -> dict[str, str]:
        """The copies a generator writes: `workflows/<name>.toml` -> text."""
        return {
            f"{BUNDLE_DIR}/{name}": path.read_text(encoding="utf-8")
            for name, path in self.files.items()
        }


def _options(sources: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(arg for source in sources for arg in ("--workflows", source))


def _is_module_spec(entry: str) -> bool:
    # The supervisor's rule (supervisor/workflows/loader.py): folders and
    # .toml files first, then `module:attribute`.
    return ":" in entry and not entry.endswith(".toml") and "/" not in entry


def resolve_workflows(entries_in: tuple[str, ...], base: Path, source: str) -> WorkflowSources:
    """Resolve and check `workflows` entries (paths exist, file names do not clash).

    `base` is the fleet file's directory, `source` its path (for errors).

    Raises:
        FleetFileError: naming `workflows[i]` and what is wrong with it.
    """
    entries: list[str] = []
    files: dict[str, Path] = {}
    modules: list[str] = []
    for index, entry in enumerate(entries_in):
        key = f"workflows[{index}]"
        path = (base / entry).resolve()
        if path.is_dir():
            found = sorted(path.glob("*.toml"))
            if not found:
                raise FleetFileError(source, key, f"folder {entry!r} holds no *.toml workflow")
        elif path.suffix == ".toml" and path.is_file():
            found = [path]
        elif _is_module_spec(entry):
            modules.append(entry)
            entries.append(entry)
            continue
        else:
            raise FleetFileError(
                source,
                key,
                f"{entry!r} is not a folder or .toml file (relative to {base}) "
                "nor module:attribute",
            )
        entries.append(str(path))
        for file in found:
            other = files.setdefault(file.name, file)
            if other != file:
                raise FleetFileError(
                    source, key, f"two workflow files are named {file.name!r}: {other} and {file}"
                )
    return WorkflowSources(entries=tuple(entries), files=files, modules=tuple(modules))
