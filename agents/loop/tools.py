"""Tools a model may call: Python functions declared with `@tool`, and their context.

```python
@tool
async def search_flights(origin: str, destination: str, day: str, ctx: ToolContext) -> list[str]:
    \"\"\"Search flights between two airports on a day (YYYY-MM-DD).\"\"\"
    ...
```

The arguments' JSON Schema comes from the type hints through msgspec (a
Struct is built from the signature), the description from the docstring's
first paragraph. A parameter annotated `ToolContext` is not an argument: it
receives the call's context, whose `key` is stable across attempts (use it as
an idempotency key for side effects). Sync functions run in a worker thread.
"""

import asyncio
import inspect
import re
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import msgspec

from natsfleet.agents.errors import AgentDefinitionError
from natsfleet.agents.llm.types import ToolSpec
from natsfleet.protocols import is_name


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a running tool call knows about itself.

    Attributes:
        key: `<task>/<loop>/<turn>/<call>`: the same in every attempt that runs
            this call, so a side effect keyed by it happens once even if the
            call runs again (a crash after it started, before its result was
            journaled).
        task_id, attempt, token: the attempt running it.
        rerun: True when an earlier attempt started this very call and did not
            journal a result (it may or may not have had its effect).
        conversation: the conversation so far as text (`role: content` lines),
            for tools that hand the task over (fleet.py, `handoff`).
        approval_id: for a tool that needs approval, the id of the person's
            decision that let it run (`approval:<key>@<ms>`), proof to pass on.
    """

    key: str
    task_id: str
    attempt: int
    token: str
    name: str
    rerun: bool = False
    conversation: str = ""
    approval_id: str = ""


class ToolArgumentsError(Exception):
    """The model's arguments do not fit the tool's schema (the model sees the detail)."""


@runtime_checkable
class Tool(Protocol):
    """Anything the loop can offer the model and run."""

    @property
    def spec(self) -> ToolSpec: ...

    @property
    def timeout_s(self) -> float | None: ...

    async def run(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        """The tool's output (any msgspec-encodable value); raise to report an error.

        Raises:
            ToolArgumentsError: `arguments` do not fit the schema.
        """
        ...


# Provider tool names: OpenAI allows ^[a-zA-Z0-9_-]{1,64}$.
_NOT_IN_TOOL_NAMES = re.compile(r"[^A-Za-z0-9_-]")


def provider_tool_name(name: str, fallback: str) -> str:
    """`name` made a name every provider takes: other characters become `_`,
    cut at 64; `fallback` when nothing is left."""
    return _NOT_IN_TOOL_NAMES.sub("_", name)[:64] or fallback


def inline_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A top-level `$ref` into `$defs` replaced by the definition itself (providers
    want `{"type": "object", ...}` at the top); other definitions stay."""
    ref = schema.get("$ref")
    defs = dict(schema.get("$defs", {}))
    if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
        return schema
    name = ref.removeprefix("#/$defs/")
    top = dict(defs.pop(name, {}))
    if defs:
        top["$defs"] = defs
    top.pop("title", None)
    return top


class FunctionTool:
    """A Python function as a tool (built by `@tool`)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout_s: float | None = 60.0,
        approval: bool = False,
    ) -> None:
        self.fn = fn
        #: A call waits for a person's approval before it runs (approval.py).
        self.needs_approval = approval
        self._name = name or fn.__name__
        if not is_name(self._name):
            raise AgentDefinitionError(f"tool name {self._name!r} is not a valid name")
        self.timeout_s = timeout_s
        self._is_async = inspect.iscoroutinefunction(fn)
        try:
            hints = typing.get_type_hints(fn)
        except Exception as exc:
            raise AgentDefinitionError(f"tool {self._name}: cannot resolve hints: {exc}") from exc
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        self._ctx_param: str | None = None
        for param in inspect.signature(fn).parameters.values():
            hint = hints.get(param.name, Any)
            if hint is ToolContext:
                self._ctx_param = param.name
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise AgentDefinitionError(f"tool {self._name}: no *args/**kwargs")
            if param.default is inspect.Parameter.empty:
                fields.append((param.name, hint))
            else:
                fields.append((param.name, hint, param.default))
        try:
            self._args_type = msgspec.defstruct(
                f"{self._name}_arguments", fields, kw_only=True, forbid_unknown_fields=True
            )
            schema = inline_schema(msgspec.json.schema(self._args_type))
        except (TypeError, ValueError) as exc:
            raise AgentDefinitionError(f"tool {self._name}: type not usable: {exc}") from exc
        doc = inspect.getdoc(fn) or ""
        text = description if description is not None else doc.split("\n\n")[0].strip()
        self.spec = ToolSpec(name=self._name, description=text, parameters=schema)
        self._fields = [f[0] for f in fields]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The function itself, unchanged (a tool stays callable from Python)."""
        return self.fn(*args, **kwargs)

    async def run(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        try:
            parsed = msgspec.convert(arguments, self._args_type)
        except msgspec.ValidationError as exc:
            raise ToolArgumentsError(str(exc)) from None
        kwargs = {name: getattr(parsed, name) for name in self._fields}
        if self._ctx_param is not None:
            kwargs[self._ctx_param] = ctx
        if self._is_async:
            result: Any = await self.fn(**kwargs)
            return result
        return await asyncio.to_thread(self.fn, **kwargs)


@typing.overload
def tool(fn: Callable[..., Awaitable[Any]] | Callable[..., Any], /) -> FunctionTool: ...


@typing.overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = 60.0,
    approval: bool = False,
) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = 60.0,
    approval: bool = False,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Declare a function (async or sync) as a tool: `@tool` or `@tool(timeout_s=5)`.

    A call that runs longer than `timeout_s` is stopped and reported to the
    model as a `timeout` error result. With `approval=True` every call waits
    for a person's approval first (docs/tools.md, "Approval").
    """

    def make(function: Callable[..., Any]) -> FunctionTool:
        return FunctionTool(
            function, name=name, description=description, timeout_s=timeout_s, approval=approval
        )

    return make(fn) if fn is not None else make
