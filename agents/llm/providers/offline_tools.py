"""The offline provider's tool-use policy: deterministic, and labelled `[offline]`.

It is not a model. Given tools, it:

1. on the first turn, calls every tool whose name or description shares a
   word with the user's request (all in one turn, in the order given), with
   arguments built from each tool's JSON Schema: a `key: value` line of the
   request for a property named `key`, else the first number of the request
   for a number, else the request itself for a string, else the type's
   empty value;
2. once the tools have answered (or when none matched), gives a final answer
   that lists each tool's result; asked for JSON (a schema in the system
   prompt), it fills the schema's required fields from that answer.

The same request gives the same answer on every machine, so the loop, the
demo and the tests run without an API key.
"""

import re
from typing import Any

import msgspec

from natsfleet.agents.llm.types import ChatMessage, LLMRequest, ToolCall, ToolSpec

OFFLINE_MARK = "[offline]"
_WORD = re.compile(r"[a-z0-9]+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_LABEL = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*[:=]\s*(.+?)\s*$", re.M)
_SCHEMA = re.compile(r"JSON Schema: (\{.*\})\s*$", re.S)
_STOP = frozenset(
    "a an and the of to for in on at by with from is are be me my it this that".split()
)
_MAX_ARG_CHARS = 200


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2}


# The loop's corrective turn (agents/loop/engine.py) is a user message, not a request.
_CORRECTION = "That answer is not valid"


def current_messages(messages: tuple[ChatMessage, ...]) -> tuple[ChatMessage, ...]:
    """The messages of the current request: from the last user message that is
    not a correction. A session puts earlier requests and their tool calls
    before it; they are history, not this request."""
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if message.role == "user" and not message.content.startswith(_CORRECTION):
            return messages[i:]
    return messages


def request_text(messages: tuple[ChatMessage, ...]) -> str:
    return next((m.content for m in messages if m.role == "user"), "")


def _matches(tool: ToolSpec, ask: set[str]) -> bool:
    described = _words(tool.name.replace("_", " ").replace("-", " ") + " " + tool.description)
    return bool(described & ask)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        found = root.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
        return found if isinstance(found, dict) else {}
    return schema


def _value(schema: dict[str, Any], root: dict[str, Any], name: str, text: str) -> Any:
    schema = _resolve(schema, root)
    labels = {k.lower(): v for k, v in _LABEL.findall(text)}
    if schema.get("enum"):
        return schema["enum"][0]
    if schema.get("anyOf"):
        return _value(schema["anyOf"][0], root, name, text)
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        required = schema.get("required", list(props))
        return {p: _value(props[p], root, p, text) for p in required if p in props}
    if kind in ("integer", "number"):
        raw = labels.get(name.lower())
        found = _NUMBER.search(raw if raw is not None else text)
        number = float(found.group()) if found else 1.0
        return int(number) if kind == "integer" else number
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "null":
        return None
    label = labels.get(name.lower())
    return (label if label is not None else text.strip())[:_MAX_ARG_CHARS]


def tool_turn(request: LLMRequest) -> tuple[str, tuple[ToolCall, ...]]:
    """The offline answer to a request that offers tools: (text, tool calls)."""
    current = current_messages(request.messages)
    ask_text = request_text(current)
    called = any(m.tool_calls for m in current if m.role == "assistant")
    if not called:
        ask = _words(ask_text)
        chosen = [t for t in request.tools if _matches(t, ask)]
        if chosen:
            calls = tuple(
                ToolCall(
                    id=f"offline_{i}",
                    name=t.name,
                    arguments=_value(t.parameters, t.parameters, t.name, ask_text),
                )
                for i, t in enumerate(chosen)
            )
            names = ", ".join(t.name for t in chosen)
            return f"{OFFLINE_MARK} calling tools whose names match the request: {names}", calls
    return final_answer(request, current, ask_text), ()


def final_answer(request: LLMRequest, current: tuple[ChatMessage, ...], ask_text: str) -> str:
    """The final answer: each tool's result listed (or the schema's fields, asked for JSON)."""
    names = {c.id: c.name for m in current for c in m.tool_calls}
    results = [
        f"- {names.get(m.tool_call_id or '', 'tool')}: {m.content[:_MAX_ARG_CHARS]}"
        for m in current
        if m.role == "tool"
    ]
    summary = "\n".join(results) if results else "- no tool matched the request"
    text = f"{OFFLINE_MARK} Done: {ask_text[:_MAX_ARG_CHARS]}\n{summary}"
    wanted = _SCHEMA.search(request.system)
    if wanted is None:
        return text
    try:
        schema = msgspec.json.decode(wanted.group(1))
    except msgspec.DecodeError:
        return text
    if not isinstance(schema, dict):
        return text
    value = _value(schema, schema, "answer", text)
    return f"{OFFLINE_MARK} " + msgspec.json.encode(value).decode()
