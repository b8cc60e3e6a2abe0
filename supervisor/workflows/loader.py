"""Loading workflows: TOML files, folders of them, and Python objects.

A source is a folder (every `*.toml` in it), one `.toml` file, or
`module:attribute` naming a `WorkflowDef`, a `Workflow` builder, or a list
of them. Every definition is validated here, so a supervisor with a bad
workflow refuses to start and says why.

A TOML file is in format 2 when it says `format = 2` (every step names its
`kind`); without `format` it is format 1 (`format1.py`), read into the same
types.
"""

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from natsfleet.process.specs import ImportSpecError, resolve_spec
from natsfleet.supervisor.workflows.errors import WorkflowDefinitionError, WorkflowError
from natsfleet.supervisor.workflows.format1 import WorkflowDefV1, upgrade
from natsfleet.supervisor.workflows.model import Step, WorkflowDef
from natsfleet.supervisor.workflows.validate import Graph, check


class Catalog:
    """Validated workflows by name, with their graphs."""

    def __init__(self, definitions: Iterable[WorkflowDef] = ()) -> None:
        self._defs: dict[str, tuple[WorkflowDef, Graph]] = {}
        for defn in definitions:
            self.add(defn)

    def add(self, defn: WorkflowDef, *, source: str = "") -> None:
        if defn.name in self._defs:
            raise WorkflowDefinitionError(defn.name, ["declared twice"], source=source)
        self._defs[defn.name] = (defn, check(defn, source=source))

    def get(self, name: str) -> WorkflowDef | None:
        found = self._defs.get(name)
        return None if found is None else found[0]

    def names(self) -> list[str]:
        return sorted(self._defs)

    def __len__(self) -> int:
        return len(self._defs)


#: The TOML formats `parse_toml` reads (`format = N` at the top; none: 1).
FORMATS = (1, 2)


def parse_toml(text: str, *, default_name: str = "", source: str = "") -> WorkflowDef:
    """One workflow from TOML text: `[steps.<name>]` and `[loops.<name>]` tables."""
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorkflowDefinitionError(default_name, [f"not TOML: {exc}"], source=source) from None
    name = str(data.get("name", default_name))
    version = data.pop("format", 1)
    if version not in FORMATS or isinstance(version, bool):
        problem = f"format = {version!r}: this version reads formats {FORMATS}"
        raise WorkflowDefinitionError(name, [problem], source=source)
    for table in ("steps", "loops"):
        entries = data.get(table, {})
        if not isinstance(entries, dict):
            problem = f"{table} must be tables: [{table}.<name>]"
            raise WorkflowDefinitionError(name, [problem], source=source)
        data[table] = [{**body, "name": key} for key, body in entries.items()]
    data["name"] = name
    try:
        if version == 1:
            return upgrade(msgspec.convert(data, WorkflowDefV1), source=source)
        data["steps"] = _steps_v2(data["steps"])
        return msgspec.convert(data, WorkflowDef)
    except msgspec.ValidationError as exc:
        raise WorkflowDefinitionError(name, [str(exc)], source=source) from None


def _steps_v2(tables: list[dict[str, Any]]) -> list[Step]:
    """Each step on its own, so an error names the step (`kind` is required)."""
    steps: list[Step] = []
    for table in tables:
        try:
            steps.append(msgspec.convert(table, Step))
        except msgspec.ValidationError as exc:
            raise msgspec.ValidationError(f"step {table['name']!r}: {exc}") from None
    return steps


def load_file(path: Path) -> WorkflowDef:
    return parse_toml(path.read_text(), default_name=path.stem, source=str(path))


def _from_python(spec: str) -> list[WorkflowDef]:
    from natsfleet.supervisor.workflows.builder import Workflow

    try:
        value: Any = resolve_spec(spec)
    except ImportSpecError as exc:
        raise WorkflowError(f"cannot load workflows from {spec!r}: {exc.detail}") from None
    items = value if isinstance(value, list | tuple) else [value]
    found = []
    for item in items:
        if isinstance(item, Workflow):
            item = item.definition()
        if not isinstance(item, WorkflowDef):
            raise WorkflowError(f"{spec!r} holds {type(item).__name__}, not a workflow")
        found.append(item)
    return found


def load(sources: Iterable[str | Path]) -> Catalog:
    """A catalog from folders, `.toml` files and `module:attribute` specs."""
    catalog = Catalog()
    for source in sources:
        text = str(source)
        path = Path(text)
        if path.is_dir():
            for file in sorted(path.glob("*.toml")):
                catalog.add(load_file(file), source=str(file))
        elif path.suffix == ".toml":
            if not path.is_file():
                raise WorkflowError(f"no workflow file {text!r}")
            catalog.add(load_file(path), source=text)
        elif ":" in text:
            for defn in _from_python(text):
                catalog.add(defn, source=text)
        else:
            raise WorkflowError(f"{text!r} is not a folder, a .toml file or module:attribute")
    return catalog
