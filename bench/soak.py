"""Chaos soak for manual runs: 5,000 tasks under the CI test's fault schedule.

    .venv/bin/python bench/soak.py [--tasks 5000] [--baseline 1000] [--agents 8]

Same harness and checker as tests/chaos (tests/chaos/harness.py): kill -9 and
restart a quarter of the agents every `--kill-every` seconds, SIGSTOP one,
kill the active supervisor, restart nats-server once; then every task is
classified (completed once, failed with a reason, lost, duplicated) and the
drain time is compared with the fault-free time measured first in the same
run. Prints a JSON report; exit code 0 when it passed.
"""

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.chaos.harness import SoakConfig, soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--baseline", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--capacity", type=int, default=4)
    parser.add_argument("--task-s", type=float, default=0.5)
    parser.add_argument("--kill-every", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    config = SoakConfig(
        tasks=args.tasks,
        baseline_tasks=args.baseline,
        agents=args.agents,
        capacity=args.capacity,
        task_s=args.task_s,
        kill_every_s=args.kill_every,
        seed=args.seed,
    )
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="natsfleet-soak-"))
    report = asyncio.run(soak(config, workdir))
    print(report.summary())
    print(f"logs and effects: {workdir}", file=sys.stderr)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
