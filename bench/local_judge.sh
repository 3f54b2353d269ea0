#!/usr/bin/env sh
# Local judge throughput next to its peer (MiniLM-L6 embeddings through candle), one run.
# Needs the MiniLM model (`emguard models pull minilm-l6-v2`; fetched on first use otherwise).
set -eu
cd "$(dirname "$0")/.."
exec cargo run --release -q -p emguard-judge --example bench_local_judge
