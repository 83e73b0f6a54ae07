"""Run every ``benchmarks/bench_*.py`` in turn (``make bench``); stop at the first failure.

Each benchmark is its own process, so one's imports and memory do not colour the
next one's figures. Extra arguments are passed to every benchmark.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    extra = list(sys.argv[1:] if argv is None else argv)
    scripts = sorted(HERE.glob("bench_*.py"))
    if not scripts:
        print(f"no benchmarks in {HERE}", file=sys.stderr)
        return 1
    for script in scripts:
        print(f"== {script.name}", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(script), *extra], cwd=HERE.parent)
        print(f"== {script.name}: exit {code} after {time.perf_counter() - started:.0f} s",
              flush=True)
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
