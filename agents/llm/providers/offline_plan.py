"""The offline provider's step-by-step tool policy: one call a turn, by data flow.

Used when a request asks for one tool call at a time
(`LLMRequest.parallel_tool_calls=False`, what `ctx.loop(max_parallel_tools=1)`
sends); `offline_tools.py` is the policy otherwise. It is not a model: it
chains tools by the names of their inputs and outputs, deterministically, and
labels every answer `[offline]`.

Each turn it calls the first tool (in the order offered) that has not been
called yet and is *ready*:

- **relevant**: its name shares a word with the request; or it produces an
  input of a relevant tool (a property named like the tool or like its
  output type, `ToolSpec.returns`: `findings` <- `research` returning
  `Findings`; `hold` <- `hold_offer`); or it takes an earlier result;
- **inputs filled**: each property from, in order, a `name: value` line of the
  request, the same-named field of an earlier result, a whole earlier result
  of a tool producing it, or (a `request`, `question`, `brief`... string) the
  request itself, or (a required number) the request's first number; every
  required property must be filled, and values must fit its JSON type;
- **not waiting**: no property of it is produced by another relevant tool that
  has not been called yet (so `hold_offer` waits for `search_flights`).

When no tool is ready it gives the final answer (`offline_tools.final_answer`).
Words are compared lower-cased, split at CamelCase, with a plain stemmer
(`bookings`, `booking` -> `book`; `flights` -> `flight`).
"""

import re
from collections.abc import Iterator
from typing import Any

import msgspec

from natsfleet.agents.llm.providers.offline_tools import (
    OFFLINE_MARK,
    current_messages,
    final_answer,
    request_text,
)
from natsfleet.agents.llm.types import LLMRequest, ToolCall, ToolSpec

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD = re.compile(r"[a-z0-9]+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_LABEL = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*[:=]\s*(.+?)\s*$", re.M)
_STOP = frozenset(
    "a an and the of to for in on at by with from is are be me my it this that".split()
)
#: String properties that take the request itself.
REQUEST_LIKE = frozenset(
    {"request", "prompt", "question", "query", "topic", "text", "brief", "message", "task"}
)
_MAX_REQUEST_CHARS = 2_000
_Fill = tuple[Any, str]  # (value, source): "label", "field", "whole", "request"


def stem(word: str) -> str:
    for suffix in ("ings", "ing", "s"):
        if word.endswith(suffix) and not word.endswith("ss") and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def words(text: str) -> set[str]:
    spaced = _CAMEL.sub(" ", text).replace("_", " ").replace("-", " ").lower()
    return {stem(w) for w in _WORD.findall(spaced) if w not in _STOP and len(w) > 2}


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        found = root.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
        return found if isinstance(found, dict) else {}
    return schema


def fits(schema: dict[str, Any], root: dict[str, Any], value: Any) -> bool:
    """Whether `value` has the JSON type `schema` asks for (not a full validation)."""
    schema = _resolve(schema, root)
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list):
        return any(fits(o, root, value) for o in options if isinstance(o, dict))
    kind = schema.get("type")
    if kind is None:
        return "properties" not in schema or isinstance(value, dict)
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    kinds = kind if isinstance(kind, list) else [kind]
    return any(checks.get(k, lambda v: True)(value) for k in kinds)


class _Plan:
    """One turn's view: the tools, what was called, and the results so far."""

    def __init__(self, request: LLMRequest) -> None:
        # A session puts earlier requests before this one: history, not this request.
        self.current = current_messages(request.messages)
        self.ask = request_text(self.current)[:_MAX_REQUEST_CHARS]
        self.labels = {k.lower(): v for k, v in _LABEL.findall(self.ask)}
        self.tools = list(request.tools)
        names = {c.id: c.name for m in self.current for c in m.tool_calls}
        self.called = {c.name for m in self.current for c in m.tool_calls}
        self.results: list[tuple[str, Any]] = []  # (tool, decoded result), oldest first
        for message in self.current:
            if message.role != "tool":
                continue
            try:
                value = msgspec.json.decode(message.content)
            except msgspec.DecodeError:
                value = message.content
            if isinstance(value, dict) and set(value) == {"error"}:
                continue  # a failed call: nothing to pass on
            self.results.append((names.get(message.tool_call_id or "", ""), value))
        self.relevant = self._relevant()

    def _produces(self, tool: ToolSpec) -> set[str]:
        return words(tool.name) | words(tool.returns)

    def _producers(self, prop: str, consumer: ToolSpec) -> Iterator[ToolSpec]:
        wanted = stem(prop.lower())
        for tool in self.tools:
            if tool.name != consumer.name and wanted in self._produces(tool):
                yield tool

    def _relevant(self) -> set[str]:
        ask = words(self.ask)
        found = {t.name for t in self.tools if words(t.name) & ask}
        found |= {t.name for t in self.tools if self._takes_result(t)}
        grew = True
        while grew:
            grew = False
            for tool in self.tools:
                if tool.name not in found:
                    continue
                for prop in _properties(tool):
                    for producer in self._producers(prop, tool):
                        if producer.name not in found:
                            found.add(producer.name)
                            grew = True
        return found

    def _takes_result(self, tool: ToolSpec) -> bool:
        return any(source == "whole" for _, source in self._fills(tool).values())

    def _fills(self, tool: ToolSpec) -> dict[str, _Fill]:
        root = tool.parameters
        out: dict[str, _Fill] = {}
        for prop, schema in _properties(tool).items():
            fill = self._fill(tool, prop, schema, root)
            if fill is not None:
                out[prop] = fill
        return out

    def _fill(
        self, tool: ToolSpec, prop: str, schema: dict[str, Any], root: dict[str, Any]
    ) -> _Fill | None:
        label = self.labels.get(prop.lower())
        if label is not None:
            value: Any = label
            if not fits(schema, root, label):
                try:
                    value = msgspec.json.decode(label)
                except msgspec.DecodeError:
                    return None
            return (value, "label") if fits(schema, root, value) else None
        for _, result in reversed(self.results):
            if isinstance(result, dict) and prop in result and fits(schema, root, result[prop]):
                return result[prop], "field"
        producers = {p.name for p in self._producers(prop, tool)}
        for name, result in reversed(self.results):
            if name in producers and fits(schema, root, result):
                return result, "whole"
        if prop.lower() in REQUEST_LIKE and fits(schema, root, self.ask):
            return self.ask, "request"
        number = _NUMBER.search(self.ask)
        if number is not None and prop in tool.parameters.get("required", ()):
            value = float(number.group())  # as the parallel policy: the request's first number
            if fits(schema, root, value) or fits(schema, root, int(value)):
                return (int(value) if fits(schema, root, int(value)) else value), "request"
        return None

    def ready(self, tool: ToolSpec) -> dict[str, Any] | None:
        """The arguments to call `tool` with now, or None if it is not ready."""
        if tool.name in self.called or tool.name not in self.relevant:
            return None
        fills = self._fills(tool)
        required = set(tool.parameters.get("required", []))
        if not required <= set(fills):
            return None
        for prop in _properties(tool):
            for producer in self._producers(prop, tool):
                if producer.name in self.relevant and producer.name not in self.called:
                    return None  # an input of it is still to be made
        anchored = any(
            source in ("label", "whole", "request") or (source == "field" and prop in required)
            for prop, (_, source) in fills.items()
        )
        return {prop: value for prop, (value, _) in fills.items()} if anchored else None


def _properties(tool: ToolSpec) -> dict[str, dict[str, Any]]:
    props = tool.parameters.get("properties")
    if not isinstance(props, dict):
        return {}
    return {k: v for k, v in props.items() if isinstance(v, dict)}


def plan_turn(request: LLMRequest) -> tuple[str, tuple[ToolCall, ...]]:
    """The offline answer, one tool call at a time: (text, tool calls)."""
    plan = _Plan(request)
    for tool in plan.tools:
        arguments = plan.ready(tool)
        if arguments is not None:
            step = len(plan.called) + 1
            text = f"{OFFLINE_MARK} step {step}: {tool.name} (its inputs are ready)"
            return text, (ToolCall(id=f"offline_{step}", name=tool.name, arguments=arguments),)
    return final_answer(request, plan.current, plan.ask), ()
