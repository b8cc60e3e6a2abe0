"""An idle agent that, when its process exits, writes the modules that
process had imported to the file named by NATSFLEET_TEST_MODULES_OUT
(tests/test_cli_imports.py)."""

import atexit
import os
import sys
from pathlib import Path
from typing import Any

from natsfleet.agents import Agent, TaskContext, skill


def _dump() -> None:
    out = os.environ.get("NATSFLEET_TEST_MODULES_OUT")
    if out:
        Path(out).write_text("\n".join(sorted(sys.modules)))


atexit.register(_dump)


class Idle(Agent):
    name = "idle"

    @skill
    async def nothing(self, input: dict[str, Any], ctx: TaskContext) -> None:
        """Do nothing."""
        return None
