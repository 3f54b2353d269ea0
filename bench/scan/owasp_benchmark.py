#!/usr/bin/env python3
"""Scores `emguard scan` (default and audit profiles), bandit and semgrep on the OWASP Benchmark
for Python (test cases written and labelled by OWASP's contributors, GPL-3; not part of this
repository). Reads a local copy: a folder with `testcode/BenchmarkTestNNNNN.py` and
`expectedresults-0.1.csv` (test name, category, real vulnerability true/false, CWE).
Semgrep runs offline on a local folder of rules (for example the `python/` folder of
github.com/semgrep/semgrep-rules, yaml files only; kept outside the repository, never committed).

Scoring is the Benchmark's own: a test case counts as flagged by a tool when the tool reports
a finding with one of the category's CWEs anywhere in the test file. Per category: true
positive rate over the real vulnerabilities, false positive rate over the safe cases.

The cases are split once, before any tuning, by the SHA-256 of the test name: first hex digit
0-4 (about 31%) is the held-out part, never looked at while developing rules; the rest is the
development part. Both are reported separately.

Every tool runs once as a whole process on the same `.py` files; wall and CPU time are printed.

Usage: owasp_benchmark.py BENCHMARK_DIR --emguard target/release/emguard [--bandit PATH]
       [--semgrep PATH --semgrep-config RULES_DIR] [--markdown]
"""

import argparse
import csv
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict

# The CWEs that count for each category (a tool's CWE for the same weakness family;
# bandit reports its XML parser checks as CWE-20 and weak hashes as CWE-327; semgrep's rules
# name theirs the same way). The same sets score every tool.
CATEGORY_CWES = {
    "cmdi": {77, 78, 88},
    "codeinj": {94, 95},
    "deserialization": {502},
    "hash": {327, 328, 916},
    "ldapi": {90},
    "pathtraver": {22, 23, 36, 73},
    "redirect": {601},
    "securecookie": {614, 1004},
    "sqli": {89},
    "trustbound": {501},
    "weakrand": {330, 338},
    "xpathi": {643},
    "xss": {79, 80},
    "xxe": {611, 20},
}


def held_out(name: str) -> bool:
    return hashlib.sha256(name.encode()).hexdigest()[0] in "01234"


def load_cases(root):
    cases = {}
    with open(os.path.join(root, "expectedresults-0.1.csv")) as f:
        for row in csv.reader(f):
            if not row or row[0].startswith("#"):
                continue
            cases[row[0]] = (row[1], row[2].strip() == "true")
    return cases


def test_name(path):
    return os.path.splitext(os.path.basename(path))[0]


def run_timed(cmd, env=None):
    start = time.perf_counter()
    before = os.times()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    after = os.times()
    wall = time.perf_counter() - start
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return proc, wall, cpu


def emguard_cwes(binary, testcode, profile):
    proc, wall, cpu = run_timed([binary, "scan", "--format", "json", "--profile", profile, testcode])
    if proc.returncode not in (0, 1):
        sys.exit(f"emguard failed ({proc.returncode}): {proc.stderr[-2000:]}")
    found = defaultdict(set)
    for entry in json.loads(proc.stdout)["files"]:
        for f in entry["findings"]:
            found[test_name(entry["path"])].add(f["cwe"])
    return found, wall, cpu


def cwes_by_test(pairs):
    """(file path, CWE numbers) pairs -> test name -> set of CWEs."""
    found = defaultdict(set)
    for path, cwes in pairs:
        found[test_name(path)].update(cwes)
    return found


def bandit_cwes(bandit, testcode):
    proc, wall, cpu = run_timed([bandit, "-r", testcode, "-f", "json", "-q"])
    issues = json.loads(proc.stdout)["results"]
    with_cwe = [i for i in issues if (i.get("issue_cwe") or {}).get("id")]
    pairs = [(i["filename"], [int(i["issue_cwe"]["id"])]) for i in with_cwe]
    return cwes_by_test(pairs), wall, cpu


def cwe_numbers(metadata_cwe):
    """Semgrep rules give `cwe` as one string or a list, each like "CWE-78: Improper ..."."""
    entries = metadata_cwe if isinstance(metadata_cwe, list) else [metadata_cwe or ""]
    return [int(m.group(1)) for e in entries for m in [re.match(r"\s*CWE-(\d+)", str(e))] if m]


def run_semgrep(semgrep, config, folder):
    """Semgrep's JSON output on the folder's `.py` files, with wall and CPU time."""
    # Offline: local rules, no metrics, no version check. Only `.py` files, the ones the other
    # tools read (testcode/ also holds one .xml per case, which generic rules would scan).
    env = dict(os.environ, SEMGREP_ENABLE_VERSION_CHECK="0", SEMGREP_SEND_METRICS="off")
    cmd = [semgrep, "scan", "--config", config, "--metrics=off", "--disable-version-check", "--json"]
    cmd += ["--include=*.py", folder]
    proc, wall, cpu = run_timed(cmd, env)
    if proc.returncode not in (0, 1):
        sys.exit(f"semgrep failed ({proc.returncode}): {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout)
    ran = re.search(r"Ran (\d+) rules on (\d+) files", proc.stderr)
    print(
        f"semgrep {out.get('version')}: {len(out['paths']['scanned'])} files scanned, "
        f"{ran.group(1) if ran else '?'} rules run, {len(out['results'])} findings, {len(out['errors'])} errors",
        file=sys.stderr,
    )
    return out, wall, cpu


def semgrep_cwes(semgrep, config, testcode):
    out, wall, cpu = run_semgrep(semgrep, config, testcode)
    results = out["results"]
    pairs = [(r["path"], cwe_numbers(r["extra"].get("metadata", {}).get("cwe"))) for r in results]
    return cwes_by_test(pairs), wall, cpu


def score(cases, found, part):
    per = defaultdict(lambda: [0, 0, 0, 0])  # tp, real, fp, safe
    for name, (category, real) in cases.items():
        if held_out(name) != (part == "held-out"):
            continue
        hit = bool(found.get(name, set()) & CATEGORY_CWES[category])
        row = per[category]
        if real:
            row[0] += hit
            row[1] += 1
        else:
            row[2] += hit
            row[3] += 1
    return per


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root")
    ap.add_argument("--emguard", required=True)
    ap.add_argument("--bandit")
    ap.add_argument("--semgrep", help="semgrep executable (needs --semgrep-config)")
    ap.add_argument("--semgrep-config", help="folder of semgrep rules (yaml)")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = ap.parse_args()
    if bool(args.semgrep) != bool(args.semgrep_config):
        ap.error("--semgrep and --semgrep-config go together")
    cases = load_cases(args.root)
    testcode = os.path.join(args.root, "testcode")
    files = len([f for f in os.listdir(testcode) if f.endswith(".py")])
    tools = {}
    timing = {}
    for profile in ("default", "audit"):
        found, wall, cpu = emguard_cwes(args.emguard, testcode, profile)
        tools[f"emguard {profile}"] = found
        timing[f"emguard {profile}"] = (wall, cpu)
    if args.bandit:
        found, wall, cpu = bandit_cwes(args.bandit, testcode)
        tools["bandit"] = found
        timing["bandit"] = (wall, cpu)
    if args.semgrep:
        found, wall, cpu = semgrep_cwes(args.semgrep, args.semgrep_config, testcode)
        tools["semgrep"] = found
        timing["semgrep"] = (wall, cpu)
    for part in ("development", "held-out"):
        print(f"\n### OWASP Benchmark for Python v0.1, {part} part\n")
        names = list(tools)
        header = "| category (real / safe cases) | " + " | ".join(f"{n} TPR / FPR" for n in names) + " |"
        print(header)
        print("|---" * (len(names) + 1) + "|")
        totals = {n: [0.0, 0.0, 0] for n in names}
        pooled = {n: [0, 0, 0, 0] for n in names}
        for category in sorted(CATEGORY_CWES):
            scored = {n: score(cases, tools[n], part)[category] for n in names}
            for n in names:
                pooled[n] = [a + b for a, b in zip(pooled[n], scored[n])]
            any_row = next(iter(scored.values()))
            cells = []
            for n in names:
                tp, real, fp, safe = scored[n]
                tpr = tp / real if real else 0.0
                fpr = fp / safe if safe else 0.0
                totals[n][0] += tpr
                totals[n][1] += fpr
                totals[n][2] += 1
                cells.append(f"{100 * tpr:.0f}% / {100 * fpr:.0f}%")
            print(f"| {category} ({any_row[1]} / {any_row[3]}) | " + " | ".join(cells) + " |")
        cells = [f"**{100 * t[0] / t[2]:.0f}% / {100 * t[1] / t[2]:.0f}%**" for t in totals.values()]
        print("| mean over categories | " + " | ".join(cells) + " |")
        cells = [f"{100 * tp / real:.1f}% / {100 * fp / safe:.1f}%" for tp, real, fp, safe in pooled.values()]
        any_pooled = next(iter(pooled.values()))
        print(f"| all cases pooled ({any_pooled[1]} / {any_pooled[3]}) | " + " | ".join(cells) + " |")
    print(f"\n{files} files, whole process, same files:")
    for n, (wall, cpu) in timing.items():
        print(f"- {n}: {wall:.2f} s wall ({files / wall:.0f} files/s), {cpu:.2f} s CPU ({files / cpu:.0f} files per CPU-second)")


if __name__ == "__main__":
    main()
