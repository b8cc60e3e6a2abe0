"""A no-op skill over MCP and over A2A against a direct `FleetClient` call, in one run.

    .venv/bin/python bench/gateway.py [--calls N] [--inflight N]

Runs bench/gateway_mcp.py (through `natsfleet gateway mcp`) and then
bench/gateway_a2a.py (through `natsfleet gateway a2a`), each on a fresh fleet
with its own direct `FleetClient` baseline measured in the same run, and
prints both. Each script also runs alone, with more options.
"""

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--inflight", type=int, default=20)
    args = parser.parse_args()
    for name in ("gateway_mcp.py", "gateway_a2a.py"):
        print(f"== {name}", flush=True)
        cmd = [sys.executable, str(HERE / name), "--calls", str(args.calls)]
        cmd += ["--inflight", str(args.inflight)]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
