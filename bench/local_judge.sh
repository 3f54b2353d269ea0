#!/usr/bin/env sh
# Local judge throughput (MiniLM cross-encoder) on short and long real answers, one run.
# Needs the MiniLM model: `emguard models pull minilm-l6-v2`.
set -eu
cd "$(dirname "$0")/.."
exec cargo run --release -q -p emguard-judge --example bench_local_judge
