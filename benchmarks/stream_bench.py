"""Streaming benchmark matrix: WORLD and RVC (full-size random-weight v2 40 kHz models,
rmvpe) at RVC's realtime defaults (block 0.25 s, crossfade 0.05 s, extra 2.5 s) and at
block 0.25 s / extra 0.5 s, threads = cores, in fp32 (the exact path) and in the
precision `auto` picks. Prints the CPU, per-stage milliseconds and the real-time factor
(processing time / block duration).

Usage: .venv/bin/python benchmarks/stream_bench.py [--blocks 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys

from rvcd.daemon.cli import main as rvcd


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--blocks", default="20", help="measured blocks per configuration (default 20)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    args = parser.parse_args()
    for extra in ("2.5", "0.5"):
        for precision in ("fp32", "auto"):
            code = rvcd(
                ["bench", "--engine", "all", "--size", "full", "--block", "0.25", "--crossfade", "0.05"]
                + ["--extra", extra, "--blocks", args.blocks, "--device", args.device]
                + ["--precision", precision]
            )
            if code:
                return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
