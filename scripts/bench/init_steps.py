"""Medians of login's init, step by step: runs functions/login/examples/init_steps.rs (a
release build) RUNS times, each a new process, and prints a Markdown table of the median
wall-clock and CPU milliseconds of each step. Needs the emulator's environment and tables
(`authctl local-setup`), as scripts/bench.sh provides.

Usage: python3 scripts/bench/init_steps.py target/release/examples/init_steps [RUNS] [default-chains]
"""

import json
import os
import statistics
import subprocess
import sys

binary = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
extra = sys.argv[3:]
# As lambda_init starts the functions: the bench issuer and audience, logs at warn.
env = {**os.environ, "AUTH_ISSUER": "https://auth.bench", "AUTH_AUDIENCE": "bench-api", "RUST_LOG": "warn"}
env.pop("AUTH_PUBLIC_JWKS", None)
samples = []
for _ in range(runs):
    out = subprocess.run([binary, *extra], check=True, capture_output=True, text=True, env=env).stdout
    samples.append(json.loads(out.strip().splitlines()[-1]))

print("| step | wall-clock, median (ms) | CPU of every thread, median (ms) |")
print("|---|---|---|")
for i, first in enumerate(samples[0]):
    wall = statistics.median(s[i]["wall_ms"] for s in samples)
    cpu = statistics.median(s[i]["cpu_ms"] for s in samples)
    print(f"| {first['step']} | {wall:.2f} | {cpu:.2f} |")
print(f"\n{runs} starts; the process start before `main` is not included (lambda_init times the whole).")
