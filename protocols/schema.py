"""JSON Schema export of every wire message (`natsfleet schema --out DIR`)."""

import json
from pathlib import Path
from typing import Any

import msgspec

from natsfleet.protocols.registry import ALL_MESSAGES
from natsfleet.protocols.version import VERSION


def message_schema(message_type: type[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = msgspec.json.schema(message_type)
    schema["$comment"] = f"natsfleet protocol version {VERSION}"
    return schema


def write_schemas(out_dir: Path) -> list[Path]:
    """Write `<Message>.json` for every message and an `index.json`; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    index: dict[str, Any] = {"version": VERSION, "messages": {}}
    for message_type in ALL_MESSAGES:
        name = message_type.__name__
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(message_schema(message_type), indent=2, sort_keys=True) + "\n")
        tag = msgspec.inspect.type_info(message_type)
        index["messages"][name] = {
            "file": path.name,
            "type": getattr(tag, "tag", None),
        }
        written.append(path)
    index_path = out_dir / "index.json"
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    written.append(index_path)
    return written
