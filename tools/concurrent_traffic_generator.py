"""Concurrent traffic generator: `python -m tools.concurrent_traffic_generator --help`.

Sends `--queries` simulated, judged queries with at most `--concurrency` in flight; see
`tools.traffic.run` for what a run does and the exit codes.
"""

from __future__ import annotations

import sys

from tools.traffic.run import main as run_main


def main(argv: list[str] | None = None) -> int:
    """Run the concurrent generator with `argv` (default: the process arguments)."""
    return run_main(argv, "concurrent")


if __name__ == "__main__":
    sys.exit(main())
