"""Bandit on the study's data, the same rows the emguard scanner benchmark reads.

Writes each row's assistant code to its own .py file, runs one `bandit -r` per data file
(as a user would on a directory), and reports the share of files with any bandit issue and
snippets per second (wall clock and CPU time, including bandit's start-up; CPU time is what a shared machine
does not distort). Output: JSON on stdout.
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


def main():
    shared, bandit = sys.argv[1], sys.argv[2]
    version = subprocess.run([bandit, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    out = {"tool": version.strip(), "files": []}
    for name in FILES:
        with tempfile.TemporaryDirectory() as tmp:
            rows = list(assistant_code(os.path.join(shared, name)))
            for i, code in enumerate(rows):
                with open(os.path.join(tmp, f"{i:05}.py"), "w") as f:
                    f.write(code)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            proc = subprocess.run([bandit, "-q", "-r", tmp, "-f", "json"], capture_output=True, text=True)
            elapsed = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            report = json.loads(proc.stdout)
            flagged = {os.path.basename(r["filename"]) for r in report["results"]}
            out["files"].append({
                "file": name,
                "rows": len(rows),
                "flagged": len(flagged),
                "seconds": elapsed,
                "cpu_seconds": cpu,
                "snippets_per_s": len(rows) / elapsed,
            })
            print(f"bandit {name}: {len(flagged)}/{len(rows)} flagged in {elapsed:.1f}s", file=sys.stderr)
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
