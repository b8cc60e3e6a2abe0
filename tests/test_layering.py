"""The package layering of docs/architecture.md ("Packages"), checked on the source.

Every `import natsfleet.X` / `from natsfleet.X... import` in a package's files,
wherever it is (module top, a function, a TYPE_CHECKING block), must name a
package that package may use; and nothing imports another package's private
(`_`-prefixed) modules.
"""

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: package -> the natsfleet packages it may import. The order is the layering:
#: protocols <- telemetry, process <- bus <- client <- supervisor, agents, deploy, gateway <- cli.
ALLOWED: dict[str, frozenset[str]] = {
    "protocols": frozenset(),
    "telemetry": frozenset({"protocols"}),
    "process": frozenset({"protocols"}),
    "bus": frozenset({"protocols", "telemetry", "process"}),
    "client": frozenset({"protocols", "telemetry", "process", "bus"}),
    "supervisor": frozenset({"protocols", "telemetry", "process", "bus", "client"}),
    "agents": frozenset({"protocols", "telemetry", "process", "bus", "client"}),
    "gateway": frozenset({"protocols", "telemetry", "process", "bus", "client"}),
    "deploy": frozenset({"protocols", "telemetry", "process", "bus", "client"}),
    "cli": frozenset(
        {
            "protocols",
            "telemetry",
            "process",
            "bus",
            "client",
            "supervisor",
            "agents",
            "deploy",
            "gateway",
        }
    ),
}


def _imports(path: Path, module: str = "") -> list[tuple[int, str]]:
    """The natsfleet names `path` imports; `module` (its dotted name) resolves
    relative imports."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # `from ..supervisor import x`: relative to `module`
                package = module.split(".")[: -node.level]
                base = ".".join([*package, base] if base else package)
            found.append((node.lineno, base))
            # `from natsfleet.bus import _wire` names a module too.
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.startswith("natsfleet.")]


def _violations(package: str) -> list[str]:
    bad: list[str] = []
    for path in sorted((REPO / package).rglob("*.py")):
        where = path.relative_to(REPO)
        module = ".".join(("natsfleet", *where.with_suffix("").parts))
        for line, name in _imports(path, module):
            parts = name.split(".")
            target = parts[1]
            if target != package and target not in ALLOWED[package]:
                bad.append(f"{where}:{line} imports {name} ({package} may not use {target})")
            private = [p for p in parts[2:] if p.startswith("_") and not p.startswith("__")]
            if target != package and private:
                bad.append(f"{where}:{line} imports {name}, private to {target}")
    return bad


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_packages_below_it(package: str) -> None:
    assert _violations(package) == []


def test_every_package_folder_is_in_the_table() -> None:
    # A new top-level package must be placed in the layering when it is added.
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    folders = {d.split("/")[0] for d in pyproject["tool"]["setuptools"]["package-dir"].values()}
    assert folders == set(ALLOWED)


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    # The checker itself: an upward import anywhere in a file is found.
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from natsfleet.supervisor import engine\n")
    assert _imports(sample) == [(2, "natsfleet.supervisor"), (2, "natsfleet.supervisor.engine")]


def test_the_check_sees_a_relative_import(tmp_path: Path) -> None:
    # `from ..supervisor import engine` in agents/ is natsfleet.supervisor too
    # (the folders are installed as natsfleet's subpackages).
    sample = tmp_path / "sample.py"
    sample.write_text("from ..supervisor import engine\nfrom . import tools\n")
    assert _imports(sample, "natsfleet.agents.sample") == [
        (1, "natsfleet.supervisor"),
        (1, "natsfleet.supervisor.engine"),
        (2, "natsfleet.agents"),
        (2, "natsfleet.agents.tools"),
    ]
