"""How long `container-infra sandbox up` takes, cold and warm.

    .venv/bin/python benchmarks/sandbox_up.py            # warm: the sandbox already up (or just stopped)
    .venv/bin/python benchmarks/sandbox_up.py --cold     # reset first: empty databases, installed services
    .venv/bin/python benchmarks/sandbox_up.py --stopped  # down first: state kept, every process restarted

Prints one line per run with the total and each phase (install, databases, keystone, services, seed).
"""

from __future__ import annotations

import argparse
import time

from container_infra.sandbox import manager
from container_infra.sandbox.layout import Layout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--cold", action="store_true", help="reset the sandbox first (wipes every resource)")
    start.add_argument("--stopped", action="store_true", help="stop the sandbox first (keeps its state)")
    parser.add_argument("--runs", type=int, default=1, help="how many times to run up")
    args = parser.parse_args()

    layout = Layout.default()
    for run in range(args.runs):
        if args.cold:
            manager.reset(layout)
        elif args.stopped:
            manager.down(layout)
        started = time.monotonic()
        phases = manager.up(layout, lambda message: None)
        total = time.monotonic() - started
        kind = "cold (after reset)" if args.cold else "stopped (after down)" if args.stopped else "warm (running)"
        detail = ", ".join(f"{name} {seconds:.1f}" for name, seconds in phases.items())
        print(f"run {run + 1}: {kind}: up took {total:.1f} s ({detail})")


if __name__ == "__main__":
    main()
