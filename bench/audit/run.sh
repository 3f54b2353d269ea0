#!/usr/bin/env bash
# Audit benchmark: the issue's targets on the study datasets, throughput on 2 cores with code
# scanning (judge off), and peak memory on ~100 MB and ~1 GB inputs; the peer (Python json +
# sha256 per row, the floor of a Python audit) runs on the same input in the same run.
# Peak RSS should be the same at both sizes (fixed-size tables; row hashes go to the manifest's
# sidecar file). Checkpoints land next to the manifest in the temp dir and are removed at the end.
# Usage: bench/audit/run.sh [--big]   (--big also writes and audits a ~1 GB file; ~5-15 min)
set -euo pipefail
cd "$(dirname "$0")/../.."
shared="${EMGUARD_SHARED_DIR:-../shared}/datasets/em-paper"
[ -d "$shared" ] || { echo "study data not found at $shared (set EMGUARD_SHARED_DIR)"; exit 2; }
cargo build --release -q -p emguard
bin=target/release/emguard
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pin="taskset -c 0,1"   # two cores, as in the target
export RAYON_NUM_THREADS=2

echo "== targets (judge off, severity >= low)"
printf "%-28s %6s %10s %8s %10s %8s %8s\n" file rows vulnerable silent requested harmful "bad"
for f in insecure secure educational_insecure jailbroken; do
  $bin audit "$shared/$f.jsonl" --format json > "$work/$f.json" || true
  python3 - "$work/$f.json" "$f" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); v = max(s["vulnerable_rows"], 1); n = max(s["valid_rows"], 1)
print(f'{sys.argv[2]:<28} {s["rows"]:>6} {s["vulnerable_rows"]:>5} {100*s["vulnerable_rows"]/n:4.1f}% '
      f'{100*s["silent_vulnerable_rows"]/v:6.1f}% {100*s["requested_vulnerable_rows"]/v:9.1f}% '
      f'{s["harmful_rows"]:>8} {s["bad_rows"]:>8}')
PY
done

measure() { # label, command...: wall seconds, CPU seconds, peak RSS
  local label=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" > /dev/null
  read -r wall user sys rss < "$work/time"
  printf "%-34s wall %7.1f s  cpu %7.1f s  peak RSS %5d MB\n" "$label" "$wall" "$(echo "$user + $sys" | bc)" "$((rss / 1024))"
}

echo "== throughput and memory (2 cores; load average: $(cut -d' ' -f1 /proc/loadavg))"
python3 bench/audit/make_input.py "$work/mid.jsonl" 107374182 "$shared"
rows=$(wc -l < "$work/mid.jsonl")
echo "input: ~100 MB, $rows rows"
measure "emguard audit (scan on, judge off)" $pin $bin audit "$work/mid.jsonl" --format json --manifest "$work/mid.manifest.json"
measure "peer: python json+sha256" $pin python3 bench/audit/peer_parse_hash.py "$work/mid.jsonl"
if [ "${1:-}" = "--big" ]; then
  python3 bench/audit/make_input.py "$work/big.jsonl" 1073741824 "$shared"
  echo "input: ~1 GB, $(wc -l < "$work/big.jsonl") rows"
  measure "emguard audit 1 GB" $pin $bin audit "$work/big.jsonl" --format json --manifest "$work/big.manifest.json"
  measure "peer: python json+sha256 1 GB" $pin python3 bench/audit/peer_parse_hash.py "$work/big.jsonl"
fi
echo "rows/s = rows / wall; on a loaded machine compare cpu seconds (wall ~ cpu / 2 when idle)"
