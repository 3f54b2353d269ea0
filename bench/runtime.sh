#!/usr/bin/env bash
# Runtime benchmark: emguard's runtime and llama.cpp (llama-cpp-python) on the same GGUF and
# the same workload, in one run, printed side by side.
#   bench/runtime.sh [MODEL.gguf] [BATCHES]
# Needs bench/.venv with llama-cpp-python (built from source, ~10 min on 2 cores):
#   python3 -m venv bench/.venv && CMAKE_ARGS="-DGGML_NATIVE=ON" bench/.venv/bin/pip install llama-cpp-python numpy
# On CPUs with AMX (Sapphire Rapids and later) the native build crashed in a KVM guest; build
# without AMX there (docs/benchmarks.md, "Half-precision KV cache"):
#   CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON
#   -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF"
set -euo pipefail
cd "$(dirname "$0")/.."
home="${EMGUARD_HOME:-$HOME/.cache/emguard}"
model="${1:-$(ls "$home"/models/smollm2-135m-instruct/*.gguf | head -1)}"
batches="${2:-8,16,32}"
prompts=bench/runtime/prompts.json
out=bench/out/runtime
mkdir -p "$out"

# --workspace: building one package alone resolves candle with other features and rebuilds it.
cargo build --release --workspace --example bench
echo "== emguard runtime" >&2
target/release/examples/bench "$model" "$prompts" "$batches" | tee "$out/emguard.jsonl"
echo "== llama.cpp $(bench/.venv/bin/python -c 'import llama_cpp; print(llama_cpp.__version__)')" >&2
bench/.venv/bin/python bench/runtime/llama_cpp_bench.py --model "$model" --prompts "$prompts" --batches "$batches" \
  | tee "$out/llama_cpp.jsonl"

bench/.venv/bin/python - "$out/emguard.jsonl" "$out/llama_cpp.jsonl" <<'PY'
import json, sys
rows = {}
for path in sys.argv[1:]:
    for line in open(path):
        r = json.loads(line)
        rows.setdefault((r["metric"], r["batch"]), {})[r["engine"]] = r
print(f"\n{'metric':<18}{'batch':>6}{'emguard':>12}{'llama.cpp':>12}{'ratio':>8}")
for (metric, batch), by in rows.items():
    e, l = by.get("emguard", {}).get("value"), by.get("llama.cpp", {}).get("value")
    ratio = f"{e / l:.2f}" if e and l else "-"
    print(f"{metric:<18}{batch:>6}{e or 0:>12.1f}{l or 0:>12.1f}{ratio:>8}")
PY
