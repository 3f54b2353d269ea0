#!/usr/bin/env bash
# Scanner benchmark on the study's data, with bandit on the same rows in the same run: both
# command-line tools on the same directories, then the library (flag rates, recall per class,
# throughput per thread, latency).
# Usage: bench/scan/run.sh   (EMGUARD_SHARED_DIR: the folder holding datasets/em-paper,
# default ../shared next to the repository)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
shared_root="${EMGUARD_SHARED_DIR:-$root/../shared}"
shared="$shared_root/datasets/em-paper"
venv="$root/bench/.venv-scan"
out="$root/bench/out"
mkdir -p "$out"

if [ ! -x "$venv/bin/bandit" ]; then
    python3 -m venv "$venv"
    echo '*' > "$venv/.gitignore"
    "$venv/bin/pip" install -q bandit
fi

cd "$root"
cargo build --release -p emguard
echo "== bandit ($("$venv/bin/bandit" --version | head -1)) and emguard scan, each on the same directories" >&2
python3 "$root/bench/scan/bandit_rates.py" "$shared" "$venv/bin/bandit" "$root/target/release/emguard" \
    > "$out/scan-bandit.json"

echo "== emguard library" >&2
EMGUARD_SHARED_DIR="$shared_root" EMGUARD_BANDIT_RESULTS="$out/scan-bandit.json" \
    cargo bench -p emguard-codescan --bench scan
