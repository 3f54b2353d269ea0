#!/usr/bin/env bash
# Runtime benchmark with one core taken (issue 22): emguard's runtime and llama.cpp on the same
# GGUF and workload as bench/runtime.sh, first on the idle machine, then while another process
# spins on one core (pinned with taskset, as a gateway's request handling or a build would take
# it). Both engines use all cores (2 threads on a 2-core machine) in both runs. A runtime that
# degrades in proportion keeps about half its idle speed on a 2-core machine; spin-waiting
# thread pools lose far more.
#   bench/runtime_busy.sh [MODEL.gguf] [BATCHES]
# Needs what bench/runtime.sh needs (bench/.venv with llama-cpp-python) and taskset.
# EMGUARD_KERNEL and LLAMA_VENV (another venv, e.g. an AVX2-only build) choose what runs.
set -euo pipefail
cd "$(dirname "$0")/.."
home="${EMGUARD_HOME:-$HOME/.cache/emguard}"
model="${1:-$(ls "$home"/models/smollm2-135m-instruct/*.gguf | head -1)}"
batches="${2:-8,32}"
venv="${LLAMA_VENV:-bench/.venv}"
prompts=bench/runtime/prompts.json
out=bench/out/runtime_busy
cores=$(nproc)
mkdir -p "$out"

cargo build --release --workspace --example bench

run_both() { # $1: label
  echo "== $1: emguard runtime (kernel ${EMGUARD_KERNEL:-default})" >&2
  target/release/examples/bench "$model" "$prompts" "$batches" | sed "s/^{/{\"load\":\"$1\",/" \
    | tee "$out/emguard_$1.jsonl"
  echo "== $1: llama.cpp $("$venv"/bin/python -c 'import llama_cpp; print(llama_cpp.__version__)')" >&2
  "$venv"/bin/python bench/runtime/llama_cpp_bench.py --model "$model" --prompts "$prompts" \
    --batches "$batches" --threads "$cores" | sed "s/^{/{\"load\":\"$1\",/" | tee "$out/llama_cpp_$1.jsonl"
}

run_both idle
taskset -c "$((cores - 1))" sh -c 'while :; do :; done' &
spinner=$!
trap 'kill $spinner 2>/dev/null' EXIT
sleep 1
run_both one_core_busy
kill $spinner
trap - EXIT

"$venv"/bin/python - "$out"/*.jsonl <<'PY'
import json, sys
rows = {}
for path in sys.argv[1:]:
    for line in open(path):
        r = json.loads(line)
        rows.setdefault((r["metric"], r["batch"]), {})[(r["engine"], r["load"])] = r["value"]
print(f"\n{'metric':<18}{'batch':>6}  {'emguard idle':>13}{'busy':>9}{'kept':>7}  {'llama.cpp idle':>15}{'busy':>9}{'kept':>7}")
for (metric, batch), by in sorted(rows.items()):
    cells = []
    for engine in ("emguard", "llama.cpp"):
        idle, busy = by.get((engine, "idle")), by.get((engine, "one_core_busy"))
        kept = f"{busy / idle:.2f}" if idle and busy else "-"
        cells.append(f"{idle or 0:>13.1f}{busy or 0:>9.1f}{kept:>7}")
    print(f"{metric:<18}{batch:>6}  {cells[0]}  {cells[1]:>31}")
PY
