"""From a skill's JSON Schema (msgspec's, with `$ref`/`$defs`) to an MCP tool's.

MCP wants a tool's input schema to be a JSON object schema at the top. A
msgspec Struct's schema is `{"$ref": "#/$defs/T", "$defs": {...}}`: the
referenced definition is lifted to the top (its `$defs` kept for nested
references). An input that is not an object (a string, a list) is wrapped
as the tool's single `input` argument.
"""

from typing import Any

import msgspec

#: The argument a non-object input travels in.
WRAPPED_ARGUMENT = "input"


def object_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """`schema` as a top-level object schema, or None if it describes something else."""
    ref = schema.get("$ref")
    defs = schema.get("$defs")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and isinstance(defs, dict):
        target = defs.get(ref.removeprefix("#/$defs/"))
        if isinstance(target, dict):
            lifted = {k: v for k, v in schema.items() if k not in ("$ref", "$defs")}
            lifted.update(target)
            lifted["$defs"] = defs
            schema = lifted
    if schema.get("type") == "object":
        return schema
    if not schema:  # no schema announced: any object
        return {"type": "object"}
    return None


def tool_input_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The tool's input schema and whether the skill's input is wrapped in `input`."""
    lifted = object_schema(schema)
    if lifted is not None:
        return lifted, False
    return {
        "type": "object",
        "properties": {WRAPPED_ARGUMENT: schema},
        "required": [WRAPPED_ARGUMENT],
        "additionalProperties": False,
    }, True


def workflow_input_schema(required: tuple[str, ...]) -> dict[str, Any]:
    """A workflow takes an object with (at least) its required top-level keys."""
    return {
        "type": "object",
        "properties": {key: {} for key in required},
        "required": list(required),
    }


def fingerprint(value: Any) -> bytes:
    """A stable byte form of a schema, to tell a changed tool list from the same one."""
    return msgspec.json.encode(value, order="sorted")
