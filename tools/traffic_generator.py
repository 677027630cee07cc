"""Sequential traffic generator: `python -m tools.traffic_generator --help`.

Sends `--queries` simulated, judged queries one at a time with `--delay` seconds between
them; see `tools.traffic.run` for what a run does and the exit codes.
"""

from __future__ import annotations

import sys

from tools.traffic.run import main as run_main


def main(argv: list[str] | None = None) -> int:
    """Run the sequential generator with `argv` (default: the process arguments)."""
    return run_main(argv, "sequential")


if __name__ == "__main__":
    sys.exit(main())
