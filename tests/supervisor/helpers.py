"""Reading what the supervisor left behind: DLQ entries, task records, effects."""

from pathlib import Path

from natsfleet.bus import Bus
from natsfleet.protocols import Codec, DeadLetter, Stream

_DEAD = Codec[DeadLetter](DeadLetter)


async def dead_letters(bus: Bus) -> list[DeadLetter]:
    stream = bus.subjects.stream(Stream.DLQ)
    info = await bus.js.stream_info(stream)
    found: list[DeadLetter] = []
    if info.state.last_seq == 0:
        return found
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await bus.js.get_msg(stream, seq)
        found.append(_DEAD.decode(msg.data or b""))
    return found


def effects(root: Path) -> tuple[list[str], list[str]]:
    """(raw executions, deduplicated effects) recorded by the mini agent."""
    raw = (root / "raw.log").read_text().split("\n") if (root / "raw.log").exists() else []
    done = sorted(p.name for p in (root / "effects").glob("*")) if (root / "effects").exists() else []
    return [line for line in raw if line], done
