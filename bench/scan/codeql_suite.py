#!/usr/bin/env python3
"""Scores `emguard scan` (default profile, with and without `--no-follow-imports`), bandit and
semgrep line by line on CodeQL's Python security query tests: the test files under
`python/ql/test/query-tests/Security/CWE-*/` of github.com/github/codeql, written and annotated
by GitHub's CodeQL team and contributors (MIT licence; not part of this repository). A local
copy keeps the repository paths under DATA_DIR (for example `DATA_DIR/python/ql/...`); the
copy used in docs/benchmarks.md was read file by file from a stored index of public GitHub
repositories, one stored version per file, listed with its commit in `DATA_DIR/MANIFEST.tsv`.

What a line is, by its authors' marks (only a comment after code on the same line counts):
- vulnerable: an inline expectation `$ Alert` (also `Alert=x`, `Alert[query-id]`),
  `$ MISSING: Alert`, `$ result=BAD`, or a comment word `NOT OK` / `BAD` / `unsafe`
  (`NOT GOOD` too);
- safe: `$ SPURIOUS: Alert`, `$ result=OK`, or a comment word `OK` / `GOOD` / `safe`.
Words and `result=`/`SPURIOUS:`/`MISSING:` marks state the truth; a plain `Alert` only says the
CodeQL query reports the line, so a line marked `$ Alert # GOOD` or `$ Alert SPURIOUS:
result=BAD` is safe. A line whose truth marks disagree (`OK ..., NOT OK if ...`) is left out.
`$ Source`, `$ Sink` and other tags are not verdicts. A folder whose `.py` files carry no verdict
at all is scored from its `.expected` file when there is one: each `#select` location (or each
row of a plain problem listing) is a vulnerable line; such a folder has no safe lines. An
`.expected` whose locations do not fit the stored `.py` text (another version) is not used.

A tool flags an annotated line when it reports a finding (by its first line) inside the
smallest statement header or call that holds the annotated line, so a finding on the first line
of a call spread over several lines counts for the argument line CodeQL marks. The stricter
count asks for a finding whose CWE is in the folder's CWE family (CWE_FAMILIES). Findings on
lines no annotated statement or call covers are counted apart as "unannotated".

Split, fixed before any result was seen: files whose repository path's SHA-256 starts with a hex
digit 0-4 are the held-out part, the rest the development part. `--samples N` prints N of
emguard's unannotated findings and N of its missed vulnerable lines, development part only.

Usage: codeql_suite.py DATA_DIR --emguard BIN [--bandit PATH]
       [--semgrep PATH --semgrep-config RULES_DIR] [--markdown] [--samples N]
"""

import argparse
import ast
import hashlib
import io
import json
import os
import re
import sys
import tokenize
from collections import defaultdict, namedtuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from owasp_benchmark import cwe_numbers, run_semgrep, run_timed  # noqa: E402

SUITE = "python/ql/test/query-tests/Security"

# The CWEs that count for a folder named CWE-NNN-...: the folder's CWE and the ones tools use for
# the same weakness (as in owasp_benchmark.py's CATEGORY_CWES where the categories meet).
CWE_FAMILIES = {
    20: {20},
    22: {22, 23, 36, 73},
    74: {74, 94, 95, 1336},
    78: {77, 78, 88},
    79: {79, 80},
    89: {89},
    90: {90},
    94: {94, 95},
    113: {113, 93},
    116: {116, 185, 186},
    117: {117, 93},
    209: {209, 497},
    215: {215, 489},
    285: {285},
    295: {295},
    312: {312, 315, 359, 532},
    326: {326},
    327: {327, 328, 916},
    377: {377, 378, 379},
    502: {502},
    601: {601},
    611: {611, 20},
    614: {614, 1004},
    643: {643},
    730: {730, 1333},
    732: {732, 276},
    776: {776, 611, 20},
    798: {798, 259, 321},
    918: {918},
    943: {943},
    1004: {1004, 614},
    1275: {1275},
    1427: {1427},
}

VULNERABLE, SAFE, AMBIGUOUS = "vulnerable", "safe", "ambiguous"
BAD_WORD = re.compile(r"(NOT OK|NOT GOOD|BAD|UNSAFE)\b", re.IGNORECASE)
GOOD_WORD = re.compile(r"(OK|GOOD|SAFE)\b", re.IGNORECASE)
LOCATION = re.compile(r"^(.+\.py):(\d+):(\d+):(\d+):(\d+)$")


def held_out(repo_path: str) -> bool:
    return hashlib.sha256(repo_path.encode()).hexdigest()[0] in "01234"


def expectation_verdicts(text):
    """`$ Alert SPURIOUS: result=BAD ...` -> (truth verdicts, query reports the line)."""
    truths, reported, prefix = [], False, None
    for word in text.split():
        if word in ("SPURIOUS:", "MISSING:"):
            prefix = word
            continue
        tag = re.split(r"[=\[]", word, maxsplit=1)[0]
        if tag == "Alert":
            if prefix == "SPURIOUS:":
                truths.append(SAFE)
            elif prefix == "MISSING:":
                truths.append(VULNERABLE)
            else:
                reported = True
        elif word in ("result=BAD", "result=OK"):
            bad = (word == "result=BAD") != (prefix == "SPURIOUS:")
            truths.append(VULNERABLE if bad else SAFE)
    return truths, reported


def word_verdicts(segment):
    """A plain comment `NOT OK - ...`, `GOOD: ...`, `OK if X, NOT OK if Y` -> truth verdicts."""
    text = segment.lstrip(" /:-")
    if BAD_WORD.match(text):
        return [VULNERABLE]
    if GOOD_WORD.match(text):
        return [SAFE, VULNERABLE] if re.search(r"\bNOT OK\b", text) else [SAFE]
    return []


def line_verdict(comment):
    """The verdict of one trailing comment, or None when it states none."""
    truths, reported = [], False
    for segment in comment.split("#")[1:]:
        if segment.lstrip().startswith("$"):
            seg_truths, seg_reported = expectation_verdicts(segment.lstrip()[1:])
            truths += seg_truths
            reported |= seg_reported
        else:
            truths += word_verdicts(segment)
    if truths:
        return truths[0] if len(set(truths)) == 1 else AMBIGUOUS
    return VULNERABLE if reported else None


def trailing_comments(source):
    """line -> text of a comment that follows code on that line."""
    comments = {}
    lines = source.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            row, col = tok.start
            if lines[row - 1][:col].strip():
                comments[row] = tok.string
    return comments


def spans(source):
    """(first, last) line of every statement header and every call: where a mark can sit."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.stmt):
            body = getattr(node, "body", None)
            last = body[0].lineno - 1 if isinstance(body, list) and body else node.end_lineno
            out.append((node.lineno, max(node.lineno, last)))
        elif isinstance(node, ast.Call):
            out.append((node.lineno, node.end_lineno))
    return out


def span_of(line, all_spans):
    holding = [s for s in all_spans if s[0] <= line <= s[1]]
    return min(holding, key=lambda s: s[1] - s[0]) if holding else (line, line)


def expected_lines(folder, texts):
    """Alert lines per file from a folder's .expected files, or None if they don't fit the files."""
    found = defaultdict(set)
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".expected"):
            continue
        rows = open(os.path.join(folder, name)).read().splitlines()
        if "#select" in rows:
            rows = rows[rows.index("#select") + 1:]
        for row in rows:
            if not row.startswith("|"):
                break
            m = LOCATION.match(row.split("|")[1].strip())
            if not m:
                continue
            rel, line, _, end_line, end_col = m.group(1), *map(int, m.group(2, 3, 4, 5))
            text = texts.get(rel)
            if text is None or line > len(text) or (line == end_line and len(text[line - 1]) < end_col):
                return None
            found[rel].add(line)
    return found


# One marked line: its folder, file, number, verdict and the lines a finding may sit on.
Line = namedtuple("Line", "folder repo_path line verdict span")


def folder_cwe(name):
    return int(re.match(r"CWE-(\d+)", name).group(1))


def load_suite(data_dir):
    """Annotated lines, per-file spans, and notes on how each folder was read."""
    root = os.path.join(data_dir, SUITE)
    annotated, all_spans, notes = [], {}, {}
    for folder in sorted(os.listdir(root)):
        if not re.match(r"CWE-\d+-", folder):
            continue
        base = os.path.join(root, folder)
        verdicts, texts = {}, {}
        for dirpath, _, files in os.walk(base):
            for name in sorted(files):
                if not name.endswith(".py"):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, base)
                source = open(path, encoding="utf-8").read()
                texts[rel] = source.splitlines()
                repo_path = f"{SUITE}/{folder}/{rel}"
                try:
                    all_spans[repo_path] = spans(source)
                    comments = trailing_comments(source)
                except (SyntaxError, tokenize.TokenError) as e:
                    sys.exit(f"{path}: cannot parse as Python 3 ({e}); remove it or fix the copy")
                marks = {n: line_verdict(c) for n, c in comments.items()}
                verdicts[rel] = {n: v for n, v in marks.items() if v}
        if any(verdicts.values()):
            notes[folder] = "inline marks"
        else:
            from_expected = expected_lines(base, texts)
            if from_expected is None:
                notes[folder] = "no marks; .expected is another version: not scored"
            elif from_expected:
                notes[folder] = "expected-file only, no safe lines"
                verdicts = {rel: {n: VULNERABLE for n in lines} for rel, lines in from_expected.items()}
            else:
                notes[folder] = "no marks, no .expected: not scored"
        for rel, marks in verdicts.items():
            repo_path = f"{SUITE}/{folder}/{rel}"
            for n, verdict in sorted(marks.items()):
                annotated.append(Line(folder, repo_path, n, verdict, span_of(n, all_spans[repo_path])))
    return annotated, notes


def repo_path_of(path, data_dir):
    return os.path.relpath(os.path.abspath(path), os.path.abspath(data_dir))


def emguard_findings(binary, suite_dir, data_dir, extra):
    proc, wall, cpu = run_timed([binary, "scan", "--format", "json", *extra, suite_dir])
    if proc.returncode not in (0, 1):
        sys.exit(f"emguard failed ({proc.returncode}): {proc.stderr[-2000:]}")
    found = []
    for entry in json.loads(proc.stdout)["files"]:
        rp = repo_path_of(entry["path"], data_dir)
        found += [(rp, f["line"], {f["cwe"]}, f["rule_id"]) for f in entry["findings"]]
    return found, wall, cpu


def bandit_findings(bandit, suite_dir, data_dir):
    proc, wall, cpu = run_timed([bandit, "-r", suite_dir, "-f", "json", "-q"])
    found = []
    for i in json.loads(proc.stdout)["results"]:
        cwe = (i.get("issue_cwe") or {}).get("id")
        cwes = {int(cwe)} if cwe else set()
        found.append((repo_path_of(i["filename"], data_dir), i["line_number"], cwes, i["test_id"]))
    return found, wall, cpu


def semgrep_findings(semgrep, config, suite_dir, data_dir):
    out, wall, cpu = run_semgrep(semgrep, config, suite_dir)
    found = []
    for r in out["results"]:
        cwes = set(cwe_numbers(r["extra"].get("metadata", {}).get("cwe")))
        found.append((repo_path_of(r["path"], data_dir), r["start"]["line"], cwes, r["check_id"].rsplit(".", 1)[-1]))
    return found, wall, cpu


def lines_by_file(findings):
    by_file = defaultdict(list)
    for path, line, cwes, rule in findings:
        by_file[path].append((line, cwes, rule))
    return by_file


def hits(line, by_file):
    """(any finding in the line's span, a finding of the folder's CWE family in it)."""
    family = CWE_FAMILIES.get(folder_cwe(line.folder), {folder_cwe(line.folder)})
    inside = [f for f in by_file.get(line.repo_path, []) if line.span[0] <= f[0] <= line.span[1]]
    return bool(inside), any(f[1] & family for f in inside)


def unannotated(findings, annotated):
    covered = defaultdict(list)
    for a in annotated:
        covered[a.repo_path].append(a.span)
    return [f for f in findings if f[0].startswith(SUITE + "/CWE-")
            and not any(s[0] <= f[1] <= s[1] for s in covered.get(f[0], []))]


def score(annotated, by_file):
    """folder -> [vulnerable, hit any, hit family, safe, safe hit any, safe hit family]."""
    per = defaultdict(lambda: [0] * 6)
    for a in annotated:
        if a.verdict == AMBIGUOUS:
            continue
        any_hit, family_hit = hits(a, by_file)
        row = per[a.folder]
        offset = 0 if a.verdict == VULNERABLE else 3
        row[offset] += 1
        row[offset + 1] += any_hit
        row[offset + 2] += family_hit
    return per


def pct(n, d):
    return f"{100 * n / d:.0f}%" if d else "-"


def cell(row):
    vuln, v_any, v_fam, safe, s_any, s_fam = row
    recall = f"{v_any} ({v_fam})" if vuln else "-"
    flagged = f"{s_any} ({s_fam})" if safe else "-"
    return f"{recall} / {flagged}"


def pooled_cell(row):
    vuln, v_any, v_fam, safe, s_any, s_fam = row
    return f"{pct(v_any, vuln)} ({pct(v_fam, vuln)}) / {pct(s_any, safe)} ({pct(s_fam, safe)})"


def mean_cell(rows):
    recall = [(r[1] / r[0], r[2] / r[0]) for r in rows if r[0]]
    safe = [(r[4] / r[3], r[5] / r[3]) for r in rows if r[3]]

    def mean(xs, i):
        return f"{100 * sum(x[i] for x in xs) / len(xs):.0f}%" if xs else "-"

    return f"{mean(recall, 0)} ({mean(recall, 1)}) / {mean(safe, 0)} ({mean(safe, 1)})"


def table_row(cells, markdown):
    return "| " + " | ".join(cells) + " |" if markdown else "  ".join(cells)


def print_part(part, annotated, tools, notes, markdown):
    lines = [a for a in annotated if held_out(a.repo_path) == (part == "held-out")]
    scored = {name: score(lines, lines_by_file(found)) for name, found in tools.items()}
    folders = sorted({a.folder for a in lines if a.verdict != AMBIGUOUS}, key=lambda f: (folder_cwe(f), f))
    files = len({a.repo_path for a in lines})
    print(f"\n### CodeQL Python security tests, {part} part ({files} files with marked lines)\n")
    print(table_row(["folder", "vulnerable / safe lines", *tools], markdown))
    if markdown:
        print("|---" * (len(tools) + 2) + "|")
    for folder in folders:
        any_row = next(iter(scored.values()))[folder]
        note = " (expected-file only)" if notes[folder].startswith("expected") else ""
        cells = [cell(scored[n][folder]) for n in tools]
        print(table_row([folder + note, f"{any_row[0]} / {any_row[3]}", *cells], markdown))
    totals = {n: [sum(scored[n][f][i] for f in folders) for i in range(6)] for n in tools}
    t = next(iter(totals.values()))
    bold = "**" if markdown else ""
    pooled = [f"{bold}{pooled_cell(totals[n])}{bold}" for n in tools]
    print(table_row([f"{bold}pooled{bold}", f"{t[0]} / {t[3]}", *pooled], markdown))
    means = [mean_cell([scored[n][f] for f in folders]) for n in tools]
    print(table_row(["mean over folders", f"{len(folders)} folders", *means], markdown))
    ambiguous = sum(a.verdict == AMBIGUOUS for a in lines)
    print(f"\nCells: vulnerable lines flagged, any finding (finding of the folder's CWE family) / safe lines "
          f"flagged, the same. Pooled and mean rows in %. {ambiguous} lines with contradicting marks left out.")
    for name, found in tools.items():
        part_found = [f for f in found if held_out(f[0]) == (part == "held-out")]
        loose = unannotated(part_found, lines)
        print(f"- {name}: {len(part_found)} findings, {len(loose)} on lines with no mark")


def print_samples(annotated, emguard, n):
    def key(item):
        return hashlib.sha256(f"{item[0]}:{item[1]}".encode()).hexdigest()

    dev = [a for a in annotated if not held_out(a.repo_path)]
    dev_found = [f for f in emguard if not held_out(f[0])]
    by_file = lines_by_file(dev_found)
    loose = sorted(unannotated(dev_found, dev), key=key)[:n]
    missed = [a for a in dev if a.verdict == VULNERABLE and not hits(a, by_file)[0]]
    missed = sorted(missed, key=lambda a: key((a.repo_path, a.line)))[:n]
    print(f"\n### Sample of emguard's findings on unmarked lines (development part, {n})\n")
    for path, line, cwes, rule in loose:
        print(f"- {path[len(SUITE) + 1:]}:{line} {rule} (CWE {sorted(cwes)})")
    print(f"\n### Sample of vulnerable lines emguard misses (development part, {n})\n")
    for a in missed:
        print(f"- {a.repo_path[len(SUITE) + 1:]}:{a.line}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data_dir")
    ap.add_argument("--emguard", required=True)
    ap.add_argument("--bandit")
    ap.add_argument("--semgrep", help="semgrep executable (needs --semgrep-config)")
    ap.add_argument("--semgrep-config", help="folder of semgrep rules (yaml)")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables")
    ap.add_argument("--samples", type=int, default=0, help="print N sample findings/misses (development part)")
    args = ap.parse_args()
    if bool(args.semgrep) != bool(args.semgrep_config):
        ap.error("--semgrep and --semgrep-config go together")
    annotated, notes = load_suite(args.data_dir)
    suite_dir = os.path.join(args.data_dir, SUITE)
    tools, timing = {}, {}
    for name, extra in (("emguard", []), ("emguard --no-follow-imports", ["--no-follow-imports"])):
        tools[name], *timing[name] = emguard_findings(args.emguard, suite_dir, args.data_dir, extra)
    if args.bandit:
        tools["bandit"], *timing["bandit"] = bandit_findings(args.bandit, suite_dir, args.data_dir)
    if args.semgrep:
        found = semgrep_findings(args.semgrep, args.semgrep_config, suite_dir, args.data_dir)
        tools["semgrep"], *timing["semgrep"] = found
    print("Folders:")
    for folder, note in notes.items():
        print(f"- {folder}: {note}")
    for part in ("development", "held-out"):
        print_part(part, annotated, tools, notes, args.markdown)
    if args.samples:
        print_samples(annotated, tools["emguard"], args.samples)
    print("\nWhole process, same files:")
    for name, (wall, cpu) in timing.items():
        print(f"- {name}: {wall:.2f} s wall, {cpu:.2f} s CPU")


if __name__ == "__main__":
    main()
