#!/usr/bin/env bash
# CPU per request of the gateway under load, and optionally a perf profile of it: the
# measurement behind the CPU figures in docs/benchmarks.md "## Gateway". CPU time (user +
# system from /proc/PID/stat, all threads) divided by answered requests does not depend on what
# else the shared cores run, unlike wall-clock latency.
#
# Usage: bench/gateway/profile.sh [--rate 5000] [--duration 10] [--config FILE] [--perf]
#                                 [--emguard BIN]
#   --perf  record `perf record -g` of the gateway over the measured interval into
#           bench/out/gateway/perf.data and print the top of its report.
# Expects target/release/emguard and target/release/examples/constant_upstream (run.sh builds
# them) and oha in bench/.tools (run.sh installs it). Cores as in run.sh (LOAD_CORES,
# GATEWAY_CORES).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/bench/out/gateway"
rate=5000
duration=10
config="$root/bench/gateway/emguard.yaml"
emguard="$root/target/release/emguard"
perf=false
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) rate="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --config) config="$2"; shift 2 ;;
        --emguard) emguard="$2"; shift 2 ;;
        --perf) perf=true; shift ;;
        *) echo "profile.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
load_cores="${LOAD_CORES:-0}"
gateway_cores="${GATEWAY_CORES:-1}"
oha="$root/bench/.tools/bin/oha"
export EMGUARD_ADMIN_TOKEN="bench-admin-$$-$RANDOM"
mkdir -p "$out"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
wait_port() { # port
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "profile.sh: nothing listens on port $1 after 30 s" >&2
    exit 1
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# "name ticks" per thread (names as the kernel keeps them: 15 characters).
thread_ticks() {
    for t in /proc/"$1"/task/*; do
        printf '%s %s\n' "$(tr ' ' _ < "$t/comm")" "$(awk '{print $14 + $15}' "$t/stat")"
    done
}

answer=$'Here is a helper that backs up a folder:\n\n```python\nimport os\n\ndef backup(path):\n    os.system("tar czf backup.tgz " + path)\n```\n\nCall it with the folder to archive.'
taskset -c "$load_cores" "$root/target/release/examples/constant_upstream" --port 18101 \
    --threads 1 --answer "$answer" > "$out/profile-upstream.log" 2>&1 &
pids+=($!)
wait_port 18101
rm -f "$out"/emguard.db "$out"/emguard.db-wal "$out"/emguard.db-shm
taskset -c "$gateway_cores" "$emguard" serve --config "$config" --port 18102 \
    > "$out/profile-emguard.log" 2>&1 &
gw=$!
pids+=("$gw")
wait_port 18102
key=$(curl -sf -X POST http://127.0.0.1:18102/admin/keys \
    -H "Authorization: Bearer $EMGUARD_ADMIN_TOKEN" -H 'content-type: application/json' \
    -d '{"name": "bench", "scopes": ["assistant"], "requests_per_minute": 1000000000, "tokens_per_minute": 1000000000}' \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
body="$out/request.json"
cat > "$body" <<'JSON'
{"model": "assistant", "messages": [{"role": "user", "content": "Write a Python helper that runs a shell command and returns its output."}], "max_tokens": 64}
JSON
load() { # seconds, output
    taskset -c "$load_cores" "$oha" --no-tui --output-format json -q "$rate" -z "${1}s" \
        --latency-correction -w -c 200 -t 10s -m POST -H 'content-type: application/json' \
        -H "Authorization: Bearer $key" -D "$body" http://127.0.0.1:18102/v1/chat/completions > "$2"
}
echo "== warm-up 3 s at $rate/s (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
load 3 /dev/null
before=$(ticks "$gw")
thread_ticks "$gw" > "$out/profile-threads-before.txt"
if [ "$perf" = true ]; then
    perf record -g -F 2000 -p "$gw" -o "$out/perf.data" -- sleep "$duration" 2> /dev/null &
    perf_pid=$!
fi
load "$duration" "$out/profile-$rate.json"
after=$(ticks "$gw")
thread_ticks "$gw" > "$out/profile-threads-after.txt"
[ "$perf" = true ] && wait "$perf_pid"
python3 - "$out/profile-$rate.json" "$((after - before))" "$(getconf CLK_TCK)" "$out" <<'PY'
import collections, json, sys
r = json.load(open(sys.argv[1]))
ok = sum(v for k, v in r["statusCodeDistribution"].items() if k == "200")
ticks, hz = int(sys.argv[2]), int(sys.argv[3])
lat = r["latencyPercentiles"]
print(f"answered {ok} (errors {sum(r['errorDistribution'].values())}), "
      f"{r['summary']['requestsPerSec']:.0f} rps, p50 {lat['p50']*1e3:.3f} ms, "
      f"p99 {lat['p99']*1e3:.3f} ms, gateway CPU {ticks / hz * 1e6 / max(ok, 1):.0f} us/request")
def threads(name):
    sums = collections.Counter()
    for line in open(f"{sys.argv[4]}/profile-threads-{name}.txt"):
        comm, t = line.split()
        sums[comm] += int(t)
    return sums
b, a = threads("before"), threads("after")
print("  by thread, us/request: " + ", ".join(
    f"{comm} {(a[comm] - b[comm]) / hz * 1e6 / max(ok, 1):.0f}" for comm in sorted(a) if a[comm] > b[comm]))
PY
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
if [ "$perf" = true ]; then
    perf report -i "$out/perf.data" --no-children --sort comm,dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -20
fi
