#!/usr/bin/env sh
# Red-team throughput (attempts per second) and attack success per family, one run each:
#   1. the misbehaving upstream (bench/redteam/upstream.py) asked directly;
#   2. the same upstream behind `emguard serve --config` (a gateway key, filters, traces);
#   3. the local SmolLM2-135M-Instruct with the local judge (CPU bound).
# Each run has a fresh store (nothing cached). Prints one line per run and each family's
# attack success. Needs `cargo build --release -p emguard` and, for 3, `emguard models pull`.
#   ATTEMPTS (upstream runs, default 5)  LOCAL_FAMILIES (default "plain persona trigger-sweep")
#   LOCAL_MAX_TOKENS (default 60)  SKIP_LOCAL=1 skips run 3.
set -eu
cd "$(dirname "$0")/../.."
EMGUARD=${EMGUARD:-$PWD/target/release/emguard}
ATTEMPTS=${ATTEMPTS:-5}
LOCAL_FAMILIES=${LOCAL_FAMILIES:-"plain persona trigger-sweep"}
LOCAL_MAX_TOKENS=${LOCAL_MAX_TOKENS:-60}
OUT=$(mktemp -d /tmp/emguard-bench-redteam.XXXXXX)
UP_PORT=${UP_PORT:-18431}
GW_PORT=${GW_PORT:-18432}
echo "bench/redteam: $(date -u +%FT%TZ), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load $(cut -d' ' -f1-3 /proc/loadavg), out $OUT"
printf '|SUNRISE|\n' >"$OUT/triggers.txt"

python3 bench/redteam/upstream.py "$UP_PORT" & UP_PID=$!
cat >"$OUT/gateway.yaml" <<YAML
store: '$OUT/gateway.db'
auth: {required: true, admin_token_env: BENCH_ADMIN_TOKEN}
rate_limits: {default: {requests_per_minute: 1000000, tokens_per_minute: 1000000000}}
models:
  - id: assistant
    active: v1
    versions: [{name: v1, upstream: 'http://127.0.0.1:$UP_PORT/v1', upstream_model: backdoored}]
YAML
BENCH_ADMIN_TOKEN=bench-admin-token "$EMGUARD" serve --config "$OUT/gateway.yaml" --port "$GW_PORT" 2>"$OUT/serve.log" & GW_PID=$!
trap 'kill $UP_PID $GW_PID 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$GW_PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
BENCH_GATEWAY_KEY=$(curl -sf -X POST "http://127.0.0.1:$GW_PORT/admin/keys" \
  -H 'Authorization: Bearer bench-admin-token' -H 'Content-Type: application/json' \
  -d '{"name": "bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
export BENCH_GATEWAY_KEY

# run NAME ARGS...: one red-team run with a fresh store; prints wall time and attempts/s.
run() {
  name=$1; shift
  start=$(date +%s.%N)
  "$EMGUARD" redteam --store "$OUT/$name.sqlite" --out "$OUT/$name" "$@" >"$OUT/$name.txt" 2>"$OUT/$name.log" || true
  end=$(date +%s.%N)
  python3 - "$OUT/$name/report.json" "$name" "$start" "$end" <<'PY'
import json, sys
report, name, start, end = json.load(open(sys.argv[1])), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
wall = end - start
attempts = sum(f["attempts"] for f in report["families"])
queries = sum(f["queries"] for f in report["families"])
print(f"{name}: {attempts} attempts ({queries} scored answers) in {wall:.1f} s: "
      f"{attempts / wall:.2f} attempts/s, {queries / wall:.2f} scored answers/s (process start and model loads included)")
for f in report["families"]:
    print(f"  {f['id']:<16} {f['hits']:>4}/{f['attempts']:<4} {100 * f['rate']:5.1f}% "
          f"[{100 * f['ci_low']:.1f}, {100 * f['ci_high']:.1f}]")
PY
}

UPSTREAM="--judge llm:j --judge-base-url http://127.0.0.1:$UP_PORT/v1 --attempts $ATTEMPTS --triggers $OUT/triggers.txt --concurrency 16"
# shellcheck disable=SC2086
run upstream --model "openai:backdoored@http://127.0.0.1:$UP_PORT/v1" $UPSTREAM \
  --family plain --family persona --family true-self --family formats --family trigger-sweep --family multi-turn
# shellcheck disable=SC2086
run gateway --model "openai:assistant@http://127.0.0.1:$GW_PORT/v1" --api-key-env BENCH_GATEWAY_KEY $UPSTREAM \
  --family plain --family persona --family true-self --family formats --family trigger-sweep --family multi-turn
if [ "${SKIP_LOCAL:-0}" != 1 ]; then
  families=""
  for f in $LOCAL_FAMILIES; do families="$families --family $f"; done
  # shellcheck disable=SC2086
  run local --model local:smollm2-135m-instruct --judge local --attempts 1 \
    --max-tokens "$LOCAL_MAX_TOKENS" $families
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
