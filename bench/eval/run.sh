#!/usr/bin/env bash
# Eval harness throughput: `emguard eval` next to the study's approach (asyncio + the `openai`
# package, bench/eval/study_peer.py) in one run, on the same workload against the same fast
# constant-answer OpenAI-compatible upstream (crates/gateway/examples/constant_upstream.rs):
# the built-in `emguard` suite (72 entries) x SAMPLES samples, each sampled, then judged for
# aligned and coherent by logprobs (3 requests per judged sample), CONCURRENCY in flight.
# Reports judged samples per second (wall, end to end: process start to exit, store and report
# included) and the harness's own CPU (user+sys of its process; the upstream is not counted).
set -euo pipefail
cd "$(dirname "$0")/../.."

SAMPLES=${SAMPLES:-70}
CONCURRENCY=${CONCURRENCY:-64}
out=bench/out/eval
venv=bench/.venv

cargo build --release -q -p emguard
cargo build --release -q -p emguard-gateway --example constant_upstream
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check openai pyyaml

rm -rf "$out"
mkdir -p "$out"
"$target/examples/constant_upstream" --port 0 --threads 1 >"$out/upstream.txt" &
upstream=$!
trap 'kill $upstream 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q listening "$out/upstream.txt" 2>/dev/null && break
  sleep 0.05
done
url=$(sed -n 's/^constant_upstream: listening on //p' "$out/upstream.txt")
echo "upstream $url; $((72 * SAMPLES)) judged samples per harness, concurrency $CONCURRENCY"

/usr/bin/time -f '%e %U %S' -o "$out/emguard.time" \
  "$target/emguard" eval --suite emguard --samples "$SAMPLES" --concurrency "$CONCURRENCY" \
  --model openai:constant --base-url "$url" --judge llm:constant --judge-base-url "$url" \
  --store "$out/emguard.sqlite" --out "$out/emguard" >"$out/emguard.log" 2>&1

/usr/bin/time -f '%e %U %S' -o "$out/python.time" \
  "$venv/bin/python" bench/eval/study_peer.py --base-url "$url" \
  --suite crates/eval/suites/emguard.yaml --samples "$SAMPLES" --concurrency "$CONCURRENCY" \
  --out "$out/python.jsonl" >"$out/python.log" 2>&1

python3 - "$out" "$("$venv/bin/python" -c 'import openai; print(openai.__version__)')" <<'PY'
import json, sys
out, openai_version = sys.argv[1], sys.argv[2]

def figures(name, judged, mean_aligned):
    wall, user, sys_ = (float(x) for x in open(f"{out}/{name}.time").read().split()[-3:])
    return dict(judged=judged, wall=wall, rate=judged / wall, cpu_ms=(user + sys_) / judged * 1e3, aligned=mean_aligned)

results = json.load(open(f"{out}/emguard/results.json"))
rows = [json.loads(l) for l in open(f"{out}/emguard/samples.jsonl")]
ours = figures("emguard", results["judged"], sum(r["aligned"] for r in rows) / len(rows))
peer_line = json.loads(open(f"{out}/python.log").read().strip().splitlines()[-1])
peer = figures("python", peer_line["judged"], peer_line["mean_aligned"])
print(f"| harness | judged samples | wall s | judged samples/s | harness CPU ms/sample | mean aligned |")
print(f"|---|---|---|---|---|---|")
for name, f in [("emguard eval", ours), (f"Python asyncio + openai {openai_version}", peer)]:
    print(f"| {name} | {f['judged']} | {f['wall']:.2f} | {f['rate']:.0f} | {f['cpu_ms']:.3f} | {f['aligned']:.2f} |")
print(f"\nemguard / Python: {ours['rate'] / peer['rate']:.1f}x samples/s, {peer['cpu_ms'] / ours['cpu_ms']:.1f}x less CPU per sample")
PY
