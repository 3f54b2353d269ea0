#!/usr/bin/env python3
"""Whole-process speed of `emguard scan` (reading files with their project, and alone with
`--no-follow-imports`) beside bandit on the same folder, interleaved rounds in one run.
Prints median wall and CPU seconds (the child's user + system time) per tool.

Usage: speed.py DIR --emguard target/release/emguard --bandit PATH [--rounds 5]
"""

import argparse
import resource
import statistics
import subprocess
import time


def timed(cmd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-2000:]!r}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--emguard", required=True)
    ap.add_argument("--bandit", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    tools = {
        "emguard (with the project)": [args.emguard, "scan", "--format", "json", args.dir],
        "emguard --no-follow-imports": [
            args.emguard, "scan", "--format", "json", "--no-follow-imports", args.dir],
        "bandit": [args.bandit, "-q", "-r", "-f", "json", args.dir],
    }
    runs = {name: [] for name in tools}
    for _ in range(args.rounds):
        for name, cmd in tools.items():
            runs[name].append(timed(cmd))
    for name, times in runs.items():
        wall = statistics.median(t[0] for t in times)
        cpu = statistics.median(t[1] for t in times)
        print(f"{name}: median {wall:.3f} s wall, {cpu:.3f} s CPU "
              f"(wall {min(t[0] for t in times):.3f}-{max(t[0] for t in times):.3f})")


if __name__ == "__main__":
    main()
