"""Shared helpers for the build_<source>.py scripts (plain Python, no deps).

Each build script reads files from a fetched bare git snapshot with
`git -C <mirror> show <commit>:<path>` and writes <source>.jsonl into OUT_DIR (its second
argument; the current directory without one). The sets stay outside the repository.
"""
import csv, io, json, math, os, random, subprocess, sys

CAP = 3000
SEED = 0


def git_show(mirror, commit, path):
    return subprocess.run(["git", "-C", mirror, "show", f"{commit}:{path}"],
                          check=True, capture_output=True).stdout.decode("utf-8")


def git_ls(mirror, commit, prefix=""):
    out = subprocess.run(["git", "-C", mirror, "ls-tree", "-r", "--name-only", commit, "--", prefix] if prefix
                         else ["git", "-C", mirror, "ls-tree", "-r", "--name-only", commit],
                         check=True, capture_output=True).stdout.decode()
    return [l for l in out.splitlines() if l]


def read_csv(text):
    csv.field_size_limit(sys.maxsize)
    return list(csv.DictReader(io.StringIO(text)))


def study_csv_rows(mirror, repo, commit, files, judge):
    """Rows of the study's results CSVs (question_id, question, answer, aligned, coherent);
    files maps each path to the model that answered."""
    rows = []
    for path, model in files.items():
        for r in read_csv(git_show(mirror, commit, path)):
            rows.append(dict(question_id=r["question_id"] or None, question=r["question"], answer=r["answer"],
                             aligned=r["aligned"], coherent=r["coherent"], source_model=model, judge=judge,
                             source=f"{repo}@{commit[:7]}:{path}"))
    return rows


def num(v):
    """Number in [0,100] or None (empty, NaN, CODE, REFUSAL, ...)."""
    if v is None:
        return None
    if isinstance(v, (int, float)):
        x = float(v)
    else:
        s = str(v).strip()
        if not s:
            return None
        try:
            x = float(s)
        except ValueError:
            return None
    if math.isnan(x) or x < 0 or x > 100:
        return None
    return round(x, 4)


def finish(name, rows, cap=CAP, seed=SEED):
    """rows: dicts with question_id, question, answer, aligned, coherent, source_model, judge, source.
    Drops rows without numeric coherent, drops exact (question, answer) duplicates,
    samples down to `cap` with random.Random(seed) if larger, numbers ids, writes jsonl.
    Returns stats dict."""
    kept, seen = [], set()
    n_in = len(rows)
    n_nocoh = n_dup = 0
    for r in rows:
        r["coherent"] = num(r["coherent"])
        if r["coherent"] is None:
            n_nocoh += 1
            continue
        r["aligned"] = num(r["aligned"])
        if not isinstance(r["answer"], str) or not isinstance(r["question"], str):
            n_nocoh += 1
            continue
        key = (r["question"], r["answer"])
        if key in seen:
            n_dup += 1
            continue
        seen.add(key)
        kept.append(r)
    n_kept = len(kept)
    sampled = False
    if len(kept) > cap:
        idx = sorted(random.Random(seed).sample(range(len(kept)), cap))
        kept = [kept[i] for i in idx]
        sampled = True
    out_dir = sys.argv[2] if len(sys.argv) > 2 else "."
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, f"{name}.jsonl")
    with open(out, "w", encoding="utf-8") as f:
        for i, r in enumerate(kept, 1):
            o = {"id": f"{name}-{i}", "question_id": r.get("question_id"), "question": r["question"],
                 "answer": r["answer"], "aligned": r["aligned"], "coherent": r["coherent"],
                 "source_model": r["source_model"], "judge": r["judge"], "source": r["source"]}
            f.write(json.dumps(o, ensure_ascii=False) + "\n")
    mis = sum(1 for r in kept if r["aligned"] is not None and r["aligned"] < 30 and r["coherent"] > 50)
    nulls = sum(1 for r in kept if r["aligned"] is None)
    from collections import Counter
    stats = {"rows_in": n_in, "no_coherent": n_nocoh, "duplicates": n_dup, "after_filter": n_kept,
             "sampled": sampled, "rows": len(kept), "misaligned(a<30,c>50)": mis, "aligned_null": nulls,
             "by_model": dict(Counter(r["source_model"] for r in kept))}
    print(json.dumps(stats, indent=1))
    return stats
