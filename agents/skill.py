"""The `@skill` decorator and the resolved description of one skill.

A skill is an async method `async def name(self, input: In, ctx: TaskContext) -> Out`.
Its input and output types come from the annotations; they are resolved when
the runtime first looks at the class (not at decoration time), so annotations
may name types defined further down the module.
"""

import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import msgspec

from natsfleet.agents.errors import AgentDefinitionError
from natsfleet.protocols import ID_MAX_CHARS, DlqReason, ProtocolError, SkillSpec, is_name

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_MARK = "__natsfleet_skill__"
_CACHE = "__natsfleet_skills__"


@dataclass(frozen=True, slots=True)
class _SkillOptions:
    name: str | None
    version: str
    description: str | None


@overload
def skill(fn: F, /) -> F: ...


@overload
def skill(
    *, name: str | None = None, version: str = "1", description: str | None = None
) -> Callable[[F], F]: ...


def skill(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    version: str = "1",
    description: str | None = None,
) -> F | Callable[[F], F]:
    """Declare an agent method as a skill.

    Use bare (`@skill`) or with options (`@skill(name="summarize", version="2")`).
    The name defaults to the method's name, the description to the first line
    of its docstring.
    """
    options = _SkillOptions(name=name, version=version, description=description)

    def mark(method: F) -> F:
        declared: object = method  # iscoroutinefunction's TypeGuard would retype `method`
        if not inspect.iscoroutinefunction(declared):
            raise AgentDefinitionError(f"skill {method.__qualname__} must be `async def`")
        setattr(method, _MARK, options)
        return method

    return mark(fn) if fn is not None else mark


@dataclass(frozen=True, slots=True)
class SkillDef:
    """One skill of an agent class, with its types resolved."""

    name: str
    version: str
    description: str
    method: str
    input_type: Any
    output_type: Any
    decoder: msgspec.json.Decoder[Any]

    def decode_input(self, data: bytes) -> Any:
        """The input as the skill's type; `ProtocolError(bad_input)` if it is not one."""
        try:
            return self.decoder.decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ProtocolError(DlqReason.BAD_INPUT, str(exc)) from None

    def spec(self) -> SkillSpec:
        return SkillSpec(
            name=self.name,
            version=self.version,
            description=self.description,
            input_schema=msgspec.json.schema(self.input_type),
            output_schema=msgspec.json.schema(self.output_type),
        )


def _resolve(cls: type, attr: str, method: Callable[..., Any], options: _SkillOptions) -> SkillDef:
    where = f"{cls.__name__}.{attr}"
    try:
        hints = typing.get_type_hints(method)
    except Exception as exc:
        raise AgentDefinitionError(f"skill {where}: cannot resolve annotations: {exc}") from exc
    params = list(inspect.signature(method).parameters.values())
    if len(params) != 3:
        raise AgentDefinitionError(f"skill {where} must take (self, input, ctx)")
    input_name = params[1].name
    if input_name not in hints or "return" not in hints:
        raise AgentDefinitionError(f"skill {where}: annotate the input and the return type")
    input_type, output_type = hints[input_name], hints["return"]
    try:
        decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(input_type)
        msgspec.json.schema(input_type)
        msgspec.json.schema(output_type)
    except (TypeError, ValueError) as exc:
        raise AgentDefinitionError(f"skill {where}: type not usable on the wire: {exc}") from exc
    name = options.name or attr
    if not is_name(name):
        raise AgentDefinitionError(
            f"skill name {name!r} must be 1 to {ID_MAX_CHARS} characters of A-Z a-z 0-9 _ - ."
        )
    doc = inspect.getdoc(method) or ""
    description = options.description if options.description is not None else doc.split("\n")[0]
    return SkillDef(
        name=name,
        version=options.version,
        description=description,
        method=attr,
        input_type=input_type,
        output_type=output_type,
        decoder=decoder,
    )


def skills_of(cls: type) -> dict[str, SkillDef]:
    """Every skill of an agent class (inherited ones included), by skill name."""
    cached = cls.__dict__.get(_CACHE)
    if cached is not None:
        return dict(cached)
    found: dict[str, SkillDef] = {}
    seen: set[str] = set()
    for klass in cls.__mro__:
        for attr, value in vars(klass).items():
            if attr in seen:
                continue  # overridden further down the MRO
            seen.add(attr)
            options = getattr(value, _MARK, None)
            if not isinstance(options, _SkillOptions):
                continue
            definition = _resolve(cls, attr, value, options)
            if definition.name in found:
                raise AgentDefinitionError(f"{cls.__name__}: two skills named {definition.name!r}")
            found[definition.name] = definition
    setattr(cls, _CACHE, found)
    return dict(found)
