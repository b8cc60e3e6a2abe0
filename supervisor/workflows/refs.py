"""`${...}` references in step inputs: parsing, validation and resolution.

A template is any JSON-like value. In its strings, `${path}` refers to a value:

- `${input.question}`: the run's input (`${input}` is all of it);
- `${steps.research.output.passages.0.text}`: an earlier step's output
  (a fan-out step's output is the list of its tasks' outputs, in order);
- `${item}`, `${index}`: the element and its position, in a fan-out step;
- `${round}`: the loop round (1, 2, ...), in a loop's steps;
- `${run.id}`: the run's id.

Paths are dot-separated keys; a number indexes a list. A trailing `?` makes a
missing value `null` instead of an error. A string that is exactly one
reference becomes the referenced value (any JSON type); references inside
longer text are interpolated (strings as they are, other values as JSON,
`null` as nothing). `$${` writes a literal `${`. Nothing is ever evaluated.
"""

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from natsfleet.supervisor.workflows.errors import UnresolvedReference

_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_SEGMENT = re.compile(r"^[A-Za-z0-9_\-]+$")
ROOTS = ("input", "steps", "item", "index", "round", "run")


@dataclass(frozen=True, slots=True)
class Ref:
    """One parsed reference."""

    text: str
    root: str
    step: str | None
    path: tuple[str, ...]
    optional: bool


def parse_ref(text: str) -> Ref:
    """Parse what is inside `${...}`; ValueError says what is wrong."""
    body = text.strip()
    optional = body.endswith("?")
    if optional:
        body = body[:-1]
    parts = body.split(".") if body else []
    if not parts or not all(_SEGMENT.match(p) for p in parts):
        raise ValueError(f"${{{text}}} is not a dotted path of [A-Za-z0-9_-] keys")
    root, rest = parts[0], tuple(parts[1:])
    if root not in ROOTS:
        raise ValueError(f"${{{text}}}: unknown root {root!r} (use one of {', '.join(ROOTS)})")
    if root == "steps":
        if len(rest) < 2 or rest[1] != "output":
            raise ValueError(f"${{{text}}}: write steps.<name>.output[.path]")
        return Ref(text, root, rest[0], rest[2:], optional)
    if root in ("index", "round") and rest:
        raise ValueError(f"${{{text}}}: {root} is a number and has no fields")
    if root == "run" and rest != ("id",):
        raise ValueError(f"${{{text}}}: only run.id is known")
    return Ref(text, root, None, rest, optional)


def _strings(template: Any) -> Iterator[str]:
    if isinstance(template, str):
        yield template
    elif isinstance(template, Mapping):
        for value in template.values():
            yield from _strings(value)
    elif isinstance(template, list | tuple):
        for value in template:
            yield from _strings(value)


def refs_in(template: Any) -> list[Ref]:
    """Every reference in a template; ValueError on the first malformed one."""
    found: list[Ref] = []
    for text in _strings(template):
        for match in _TOKEN.finditer(text):
            if match.group(1) is not None:
                found.append(parse_ref(match.group(1)))
        if "${" in _TOKEN.sub("", text):
            raise ValueError(f"unclosed reference in {text!r}")
    return found


def refs_problems(where: str, template: Any, known: set[str], allowed: set[str]) -> list[str]:
    """Load-time problems of a template's references: syntax, undefined steps, and
    `item`/`index`/`round` where they are not set (`allowed` says which are)."""
    try:
        refs = refs_in(template)
    except ValueError as exc:
        return [f"{where}: bad reference: {exc}"]
    problems = []
    for ref in refs:
        if ref.step is not None and ref.step not in known:
            problems.append(f"{where}: ${{{ref.text}}} refers to undefined step {ref.step!r}")
        if ref.root in ("item", "index", "round") and ref.root not in allowed:
            problems.append(f"{where}: ${{{ref.text}}}: {ref.root} is not set here")
    return problems


_MISSING: Any = object()


@dataclass(slots=True)
class Scope:
    """What references resolve against; `outputs` holds only steps that have one."""

    run_id: str
    input: Any
    outputs: dict[str, Any] = field(default_factory=dict)
    item: Any = _MISSING
    index: int | None = None
    round: int | None = None


def _walk(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if isinstance(value, Mapping):
            value = value.get(key, _MISSING)
        elif isinstance(value, list) and key.isdigit():
            value = value[int(key)] if int(key) < len(value) else _MISSING
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def resolve(ref: Ref, scope: Scope) -> Any:
    """The referenced value; UnresolvedReference if missing and not optional."""
    if ref.root == "steps":
        assert ref.step is not None
        base = scope.outputs.get(ref.step, _MISSING)
        why = f"step {ref.step!r} has no output (yet)"
    else:
        base = {
            "input": scope.input,
            "item": scope.item,
            "index": _MISSING if scope.index is None else scope.index,
            "round": _MISSING if scope.round is None else scope.round,
            "run": {"id": scope.run_id},
        }[ref.root]
        why = f"{ref.root} is not set here"
    value = base if base is _MISSING else _walk(base, ref.path)
    if value is _MISSING:
        if ref.optional:
            return None
        if base is not _MISSING:
            why = f"no value at {'.'.join(ref.path)!r}"
        raise UnresolvedReference(ref.text, why)
    return value


def _interpolate(text: str, scope: Scope) -> Any:
    whole = _TOKEN.fullmatch(text)
    if whole is not None and whole.group(1) is not None:
        return resolve(parse_ref(whole.group(1)), scope)

    def piece(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return "${"
        value = resolve(parse_ref(match.group(1)), scope)
        if value is None:
            return ""
        return value if isinstance(value, str) else msgspec.json.encode(value).decode()

    return _TOKEN.sub(piece, text)


def render(template: Any, scope: Scope) -> Any:
    """The template with every reference replaced."""
    if isinstance(template, str):
        return _interpolate(template, scope)
    if isinstance(template, Mapping):
        return {key: render(value, scope) for key, value in template.items()}
    if isinstance(template, list | tuple):
        return [render(value, scope) for value in template]
    return template
