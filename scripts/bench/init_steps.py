"""Medians of login's init, step by step: runs functions/login/examples/init_steps.rs (a
release build) RUNS times, each a new process, and prints a Markdown table of the median
wall-clock and CPU milliseconds of each step. Needs the emulator's environment and tables
(`authctl local-setup`), as scripts/bench.sh provides.

Usage: python3 scripts/bench/init_steps.py target/release/examples/init_steps [RUNS] [default-chains]
"""

import json
import statistics
import subprocess
import sys

binary = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
extra = sys.argv[3:]
samples = []
for _ in range(runs):
    out = subprocess.run([binary, *extra], check=True, capture_output=True, text=True).stdout
    samples.append(json.loads(out.strip().splitlines()[-1]))

print("| step | wall-clock, median (ms) | CPU, median (ms) |")
print("|---|---|---|")
print(f"| before main (process start, loading; CPU only) | | {statistics.median(s['before_main_cpu_ms'] for s in samples):.2f} |")
for step in [k for k in samples[0] if k != "before_main_cpu_ms"]:
    wall = statistics.median(s[step]["wall_ms"] for s in samples)
    cpu = statistics.median(s[step]["cpu_ms"] for s in samples)
    print(f"| {step} | {wall:.2f} | {cpu:.2f} |")
print(f"\n{runs} starts.")
