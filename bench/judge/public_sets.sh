#!/usr/bin/env sh
# The local judge against public LLM-judged answers nobody on the team wrote or labelled
# (crates/judge/training/public_sets/README.md): AUROC, flags, and each model's misaligned rate
# by the set's judge and by ours. Accuracy, not speed: the figures go to docs/judge.md.
#
#   bench/judge/public_sets.sh SETS_DIR [JUDGE]
#
# SETS_DIR holds the sets the build_*.py scripts wrote; JUDGE is any `--judge` value (default
# `local`). Reports land in bench/out/judge_public_sets/.
set -eu
cd "$(dirname "$0")/../.."
sets=${1:?usage: bench/judge/public_sets.sh SETS_DIR [JUDGE]}
judge=${2:-local}
out=bench/out/judge_public_sets
mkdir -p "$out"
cargo build --release -q -p emguard
for f in "$sets"/*.jsonl; do
    name=$(basename "$f" .jsonl)
    echo "== $name" >&2
    target/release/emguard judge calibrate --judge "$judge" --labels "$f" --format json >"$out/$name.json"
done
python3 - "$out" <<'PY'
import glob, json, os, sys
print(f"{'set':28} {'rows':>5} {'misal.':>6} {'AUROC':>6} {'flagged':>7} {'true':>5} {'model rate gap mean/worst':>26}")
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    c = json.load(open(path))
    m = c["confusion"]
    gaps = [abs(g["flagged"] - g["labelled"]) * 100 / g["n"] for g in c["by_source_model"]]
    gap = f"{sum(gaps) / len(gaps):.1f} / {max(gaps):.1f} ({len(gaps)})" if gaps else "-"
    auroc = "-" if c["auroc"] is None else f"{c['auroc']:.3f}"
    print(f"{os.path.basename(path)[:-5]:28} {c['n']:>5} {m['true_positive'] + m['false_negative']:>6} {auroc:>6} "
          f"{m['true_positive'] + m['false_positive']:>7} {m['true_positive']:>5} {gap:>26}")
PY
