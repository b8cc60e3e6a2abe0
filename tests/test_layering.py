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
#: protocols <- telemetry, process <- bus <- client <- supervisor, agents, gateway, deploy <- cli.
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
            "gateway",
            "deploy",
        }
    ),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from natsfleet.bus import _wire` names a module too.
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.startswith("natsfleet.")]


def _violations(package: str) -> list[str]:
    bad: list[str] = []
    for path in sorted((REPO / package).rglob("*.py")):
        where = path.relative_to(REPO)
        for line, name in _imports(path):
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
