"""The remote A2A agent of these tests: tests/a2a_remote.py as a real process."""

import asyncio
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.procs import AgentProcess, AgentProcs

_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+/)")


@dataclass
class Remote:
    process: AgentProcess
    url: str
    log: Path

    def lines(self, word: str) -> list[str]:
        """The ids of the remote tasks that logged `word` (start/cancel)."""
        text = self.log.read_text() if self.log.exists() else ""
        return [line.split()[-1] for line in text.splitlines() if line.startswith(word)]

    async def until(self, word: str, count: int, timeout_s: float = 10.0) -> list[str]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(found := self.lines(word)) < count:
            assert asyncio.get_running_loop().time() < deadline, (word, self.log.read_text())
            await asyncio.sleep(0.02)  # the remote's own log file is what it tells
        return found

    async def kill(self) -> None:
        self.process.signal(signal.SIGKILL)
        await self.process.wait(5)


async def start_remote(procs: AgentProcs, tmp: Path, *args: str) -> Remote:
    log = tmp / "remote-effects.log"
    cmd = [sys.executable, "-m", "tests.a2a_remote", *args]
    process = await procs.spawn("a2a-remote", cmd, env={"A2A_REMOTE_LOG": str(log)})
    deadline = asyncio.get_running_loop().time() + 15
    while (found := _LISTENING.search(process.log())) is None:
        assert process.returncode is None, process.log()
        assert asyncio.get_running_loop().time() < deadline, process.log()
        await asyncio.sleep(0.05)  # its one sign of readiness is this line
    return Remote(process, found.group(1), log)
