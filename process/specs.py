"""`module:attr` import specs and the agent entry-point group, defined once.

`natsfleet agent run`, the fleet file check (deploy), workflow sources
(`module:attribute`) and the researcher's search provider all name Python
objects the same way. This module lives in the bus because the bus is the
lowest layer that agents, supervisor, deploy and cli may all import
(`protocols` is wire-only); it imports nothing of ours but the error root.
"""

import importlib

from natsfleet.protocols import NatsFleetError

#: Entry-point group under which other distributions register agents by name:
#: `[project.entry-points."natsfleet.agents"]` in their pyproject.toml.
AGENT_ENTRY_POINT_GROUP = "natsfleet.agents"


class ImportSpecError(NatsFleetError):
    """A `module:attr` spec does not resolve.

    `module` and `attr` are the spec's two halves; `missing` is the attribute
    (of a dotted `attr`) that was absent, or None when the module itself did
    not import (`cause` says why) or the spec is malformed.
    """

    def __init__(
        self,
        spec: str,
        detail: str,
        *,
        module: str = "",
        attr: str = "",
        missing: str | None = None,
        cause: BaseException | None = None,
    ) -> None:
        self.spec = spec
        self.detail = detail
        self.module = module
        self.attr = attr
        self.missing = missing
        self.cause = cause
        super().__init__(f"{spec!r}: {detail}")


def split_spec(spec: str) -> tuple[str, str]:
    """`pkg.mod:Class.attr` -> (`pkg.mod`, `Class.attr`).

    Raises:
        ImportSpecError: no `:`, or an empty half.
    """
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ImportSpecError(spec, "not of the form package.module:attribute")
    return module, attr


def resolve_spec(spec: str) -> object:
    """Import `module` and walk the dotted `attr` of a `module:attr` spec.

    Only ImportError (module missing or failing to import its own imports) and
    AttributeError become ImportSpecError; any other exception the module
    raises while importing propagates, so a caller decides how much of a broken
    user module it tolerates.

    Raises:
        ImportSpecError: malformed spec, module not importable, attribute absent.
    """
    module, attr = split_spec(spec)
    try:
        target: object = importlib.import_module(module)
    except ImportError as exc:
        raise ImportSpecError(
            spec, f"cannot import {module!r}: {exc}", module=module, attr=attr, cause=exc
        ) from exc
    for name in attr.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise ImportSpecError(
                spec, f"{module!r} has no {attr!r}", module=module, attr=attr, missing=name
            ) from None
    return target
