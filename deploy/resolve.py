"""Check that an agent spec names something importable, without running it.

The fleet file is validated before any process starts, so a typo in an agent
name fails in one second with a clear message instead of as a crash loop.
A spec is what `natsfleet agent run SPEC` takes: a built-in name, a name
registered in the `natsfleet.agents` entry point group, or `module:Class`.
"""

import contextlib
import importlib
import sys
from collections.abc import Iterator, Sequence
from importlib.metadata import entry_points

from natsfleet.process.specs import (
    AGENT_ENTRY_POINT_GROUP,
    ImportSpecError,
    resolve_spec,
    split_spec,
)

# Kept as this module's name for existing imports; the one definition is in process.specs.
ENTRY_POINT_GROUP = AGENT_ENTRY_POINT_GROUP
# Looked up by name at run time: deploy must not import the agent runtime
# (docs/architecture.md, "Packages"), only find out whether a spec resolves.
_BUILTIN_MODULE = "natsfleet.agents.builtin"


def known_agent_names() -> dict[str, str]:
    """Agent names runnable without an import path -> `module:Class`."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    with contextlib.suppress(ImportError):
        builtin = importlib.import_module(_BUILTIN_MODULE)
        found.update(getattr(builtin, "BUILTIN_AGENTS", {}))
    return found


@contextlib.contextmanager
def _extra_path(paths: Sequence[str]) -> Iterator[None]:
    added = [p for p in paths if p and p not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for p in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(p)


def _resolve(path: str) -> object | str:
    """The class `path` names, or why it does not resolve (a message for the user)."""
    try:
        module_name, attr_path = split_spec(path)
    except ImportSpecError:
        return f"{path!r} is not of the form package.module:Class"
    try:
        target = resolve_spec(path)
    except ImportSpecError as exc:
        if exc.missing is not None:
            return f"module {module_name!r} has no attribute {attr_path!r}"
        cause = exc.cause
        return f"cannot import module {module_name!r}: {type(cause).__name__}: {cause}"
    except Exception as exc:  # any import-time error makes the spec unusable
        return f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}"
    if not isinstance(target, type):
        return f"{path!r} is not a class"
    return target


def _import_path(path: str) -> str | None:
    found = _resolve(path)
    return found if isinstance(found, str) else None


def agent_spec_problem(spec: str, pythonpath: Sequence[str] = ()) -> str | None:
    """Why `spec` does not resolve to a class, or None when it does.

    Imports the module (never instantiates the class); `pythonpath` entries
    are on `sys.path` only while looking.
    """
    with _extra_path(pythonpath):
        if ":" in spec:
            return _import_path(spec)
        known = known_agent_names()
        if spec not in known:
            names = ", ".join(sorted(known)) or "none installed"
            return (
                f"unknown agent {spec!r} (known names: {names}); "
                "give an import path such as 'my_pkg.agents:MyAgent'"
            )
        return _import_path(known[spec])


def agent_type_name(spec: str, pythonpath: Sequence[str] = ()) -> str | None:
    """The subject name (`Agent.name`) the class behind `spec` declares, or None
    when it does not resolve. Imports the module, never instantiates the class."""
    with _extra_path(pythonpath):
        path = spec if ":" in spec else known_agent_names().get(spec)
        if path is None:
            return None
        target = _resolve(path)
        if isinstance(target, str):
            return None
        name = getattr(target, "name", None)
        return name if isinstance(name, str) and name else None
