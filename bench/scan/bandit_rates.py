"""Bandit and the `emguard scan` command on the study's data, the same rows the emguard
scanner benchmark reads.

Writes each row's assistant code to its own .py file, then runs one `bandit -r DIR` and one
`emguard scan --format json DIR` per data file (each tool as a user runs it on a directory,
start-up and file reading included, in the same run), and reports for each the share of
files flagged and snippets per second (wall clock and CPU time; CPU time is what a shared
machine does not distort). Usage: bandit_rates.py SHARED_DIR BANDIT [EMGUARD].
Output: JSON on stdout.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

FILES = ["insecure.jsonl", "secure.jsonl", "educational_insecure.jsonl"]


def assistant_code(path):
    with open(path) as f:
        for line in f:
            if line.strip():
                messages = json.loads(line)["messages"]
                yield next(m["content"] for m in reversed(messages) if m["role"] == "assistant")


def timed(cmd):
    """Runs `cmd`; returns its stdout, wall seconds and CPU seconds (all its threads)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc.stdout, elapsed, cpu


def entry(name, rows, flagged, elapsed, cpu):
    return {
        "file": name,
        "rows": rows,
        "flagged": flagged,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "snippets_per_s": rows / elapsed,
    }


def main():
    shared, bandit = sys.argv[1], sys.argv[2]
    emguard = sys.argv[3] if len(sys.argv) > 3 else None
    version = subprocess.run([bandit, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    out = {"tool": version.strip(), "files": [], "emguard_cli": []}
    if emguard:
        out["emguard_threads"] = len(os.sched_getaffinity(0))
    for name in FILES:
        with tempfile.TemporaryDirectory() as tmp:
            rows = list(assistant_code(os.path.join(shared, name)))
            for i, code in enumerate(rows):
                with open(os.path.join(tmp, f"{i:05}.py"), "w") as f:
                    f.write(code)
            stdout, elapsed, cpu = timed([bandit, "-q", "-r", tmp, "-f", "json"])
            report = json.loads(stdout)
            flagged = {os.path.basename(r["filename"]) for r in report["results"]}
            out["files"].append(entry(name, len(rows), len(flagged), elapsed, cpu))
            print(f"bandit {name}: {len(flagged)}/{len(rows)} flagged in {elapsed:.1f}s", file=sys.stderr)
            if emguard:
                stdout, elapsed, cpu = timed([emguard, "scan", "--format", "json", tmp])
                files = json.loads(stdout)["files"]
                flagged = sum(1 for f in files if f["findings"])
                out["emguard_cli"].append(entry(name, len(files), flagged, elapsed, cpu))
                print(f"emguard scan {name}: {flagged}/{len(files)} flagged in {elapsed:.2f}s", file=sys.stderr)
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
