"""Cold `seamline validate` of the manufacturing pack, as a whole process.

Prints the median wall time of N fresh processes and, as the baseline measured in the same
run, the median of a bare `python -c pass` and of a process that only imports the libraries
validate needs (yaml, jsonschema, click, chinese_calendar). Target: < 1 s whole process.

    python bench/bench_validate.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "examples" / "manufacturing_pack"


def timed(cmd: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    py = sys.executable
    bare = timed([py, "-c", "pass"], runs)
    libs = timed([py, "-c", "import yaml, jsonschema, click, chinese_calendar, simpleeval"], runs)
    validate = timed([py, "-m", "engine.cli.main", "--app", str(PACK), "validate"], runs)
    print(f"runs per command: {runs} (median wall time of fresh processes)")
    print(f"{'python -c pass':<46} {bare * 1000:8.1f} ms")
    print(f"{'python importing yaml/jsonschema/click/cc/se':<46} {libs * 1000:8.1f} ms")
    print(
        f"{'seamline validate (manufacturing pack)':<46} {validate * 1000:8.1f} ms"
        f"   {validate / bare:5.1f}x bare python, {validate / libs:4.2f}x library imports"
    )
    print(f"target < 1000 ms: {'met' if validate < 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
