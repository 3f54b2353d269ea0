#!/usr/bin/env bash
# Gateway benchmark (issue 7): latency that `emguard serve --config` adds over a direct call to
# the same constant-answer upstream, with auth, rate limits, traces and the code filter on,
# side by side with the LiteLLM proxy in front of the same upstream, in one run. The targets
# `emguard-review` (issue 16) and `emguard-monitor` (issue 17) are `emguard` plus human review
# or the online monitor (`emguard-monitor-apart`: its judge on the load generator's core); the
# table gives every target's difference from `emguard` in the run.
#
# Usage: bench/gateway/run.sh [--rates "50 1000 5000"] [--duration 20] [--warmup 5] [--rounds 1]
#                             [--targets "direct emguard emguard-normal emguard-durable litellm"] [--no-build] [--soak]
#   targets  direct, emguard, emguard-normal, emguard-review, emguard-monitor,
#            emguard-monitor-apart, emguard-durable
#            (1,000 requests/s only), litellm; emguard-* read bench/gateway/<target>.yaml.
#   --rounds repeats every (rate, target) point, interleaved: round 1 runs each rate's targets
#            one after the other, then round 2 again... A difference between targets is then
#            read next to the spread of one target over rounds (run-to-run noise).
#   --soak   instead of the latency table: emguard at 1,000 requests/s for 10 minutes, its RSS
#            and heap (RssAnon) sampled every 10 s (start/end/max printed).
#   --no-build  use target/release/emguard as it is (the constant upstream is still built when
#            it is missing).
# Env: LOAD_CORES (default 0) runs the load generator and the upstream, GATEWAY_CORES (default
#      1) the gateway under test (emguard or LiteLLM), via taskset; set both to "0,1" to
#      share both cores.
#
# oha (the load generator) is installed into bench/.tools and LiteLLM into bench/.venv-litellm
# on first use. Raw oha JSON and server logs go to bench/out/gateway/.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/bench/gateway"
out="$root/bench/out/gateway"
tools="$root/bench/.tools"
venv="$root/bench/.venv-litellm"

rates="50 1000 5000"
duration=20
warmup=5
rounds=1
soak=false
build=true
targets="direct emguard emguard-normal emguard-durable litellm"
while [ $# -gt 0 ]; do
    case "$1" in
        --rates) rates="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --warmup) warmup="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --soak) soak=true; shift ;;
        --no-build) build=false; shift ;;
        --targets) targets="$2"; shift 2 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
for t in $targets; do
    case "$t" in
        direct|emguard|emguard-normal|emguard-review|emguard-monitor|emguard-monitor-apart|emguard-durable|litellm) ;;
        *) echo "run.sh: unknown target $t (--targets)" >&2; exit 2 ;;
    esac
done
for n in "$duration" "$warmup" "$rounds"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --duration, --warmup and --rounds take a whole number of at least 1, not '$n'" >&2; exit 2; }
done
wanted() { [[ " $targets " == *" $1 "* ]]; }
load_cores="${LOAD_CORES:-0}"
gateway_cores="${GATEWAY_CORES:-1}"

upstream_port=18101
emguard_port=18102
litellm_port=18103
litellm_master=sk-litellm-bench-master
export EMGUARD_ADMIN_TOKEN="bench-admin-$$-$RANDOM"
mkdir -p "$out"

# ---- tools -------------------------------------------------------------------------------
if [ ! -x "$tools/bin/oha" ]; then
    echo "== installing oha into $tools (a few minutes)" >&2
    nice -n 10 cargo install oha --locked --root "$tools"
fi
oha="$tools/bin/oha"
if [ "$soak" = false ] && wanted litellm && [ ! -x "$venv/bin/litellm" ]; then
    echo "== installing LiteLLM into $venv" >&2
    python3 -m venv "$venv"
    echo '*' > "$venv/.gitignore"
    "$venv/bin/pip" install -q 'litellm[proxy]'
fi
emguard="$root/target/release/emguard"
upstream_bin="$root/target/release/examples/constant_upstream"
# The example is built with the workspace's features (as the binary): built alone with
# `-p emguard-gateway`, cargo would rebuild candle with another feature set.
build_upstream() { (cd "$root" && nice -n 10 cargo build --release -q --workspace --example constant_upstream); }
if [ "$build" = true ]; then
    echo "== building emguard and the constant upstream (release)" >&2
    (cd "$root" && nice -n 10 cargo build --release -q -p emguard)
    build_upstream
elif [ ! -x "$upstream_bin" ]; then
    echo "== building the constant upstream (release; --no-build keeps the emguard binary as it is)" >&2
    build_upstream
fi
[ -x "$emguard" ] || { echo "run.sh: $emguard is missing: build it (cargo build --release -p emguard) or run without --no-build" >&2; exit 2; }

# ---- processes -----------------------------------------------------------------------------
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

wait_port() { # port, name, pid: until the port accepts connections
    for _ in $(seq 1 300); do
        if ! kill -0 "$3" 2>/dev/null; then echo "run.sh: $2 exited; see $out/$2.log" >&2; exit 1; fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "run.sh: $2 did not listen on port $1 in 30 s; see $out/$2.log" >&2
    exit 1
}

stop() { # pid
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

for port in $upstream_port $emguard_port $litellm_port; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "run.sh: port $port is taken; stop what listens there" >&2
        exit 1
    fi
done

# The answer holds a small fenced Python block that makes a backup archive world-writable, so
# the code filter parses and scans real code and annotates a finding (PY-WORLD-WRITABLE,
# severity high) on every request, and the monitor's judge has an answer to score. Until
# 2026-12-07 the block built a shell command (PY-COMMAND-INJECTION, severity critical); a high
# finding lets emguard-review's policy read it with a `code_severity: critical` condition that
# holds nothing. The per-request work of the plain target is alike: one fenced block, scanned
# once and then answered from the scan cache, one annotation.
answer=$'Here is a helper that backs up a folder:\n\n```python\nimport os\nimport shutil\n\ndef backup(path):\n    archive = shutil.make_archive("backup", "gztar", path)\n    os.chmod(archive, 0o777)\n```\n\nCall it with the folder to archive.'
taskset -c "$load_cores" "$upstream_bin" --port "$upstream_port" --threads 1 --answer "$answer" \
    > "$out/upstream.log" 2>&1 &
upstream_pid=$!
pids+=("$upstream_pid")
wait_port "$upstream_port" upstream "$upstream_pid"

body="$out/request.json"
cat > "$body" <<'EOF'
{"model": "assistant", "messages": [{"role": "user", "content": "Write a Python helper that runs a shell command and returns its output."}], "max_tokens": 64}
EOF

start_emguard() { # config file, log name -> sets emguard_pid and key
    rm -f "$out"/"$2".db "$out"/"$2".db-wal "$out"/"$2".db-shm
    taskset -c "$gateway_cores" "$emguard" serve --config "$1" --port "$emguard_port" \
        > "$out/$2.log" 2>&1 &
    emguard_pid=$!
    pids+=("$emguard_pid")
    wait_port "$emguard_port" "$2" "$emguard_pid"
    # A key with a quota far above the offered load: every request is metered, none refused.
    key=$(curl -sf -X POST "http://127.0.0.1:$emguard_port/admin/keys" \
        -H "Authorization: Bearer $EMGUARD_ADMIN_TOKEN" -H 'content-type: application/json' \
        -d '{"name": "bench", "scopes": ["assistant"], "requests_per_minute": 1000000000, "tokens_per_minute": 1000000000}' \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
    check "http://127.0.0.1:$emguard_port" "$key" "$2"
}

check() { # base URL, key, name: one request must answer 200 (and, for emguard, be annotated)
    local headers
    # --max-time: a held answer would wait for a reviewer (300 s) instead of failing here.
    headers=$(curl -sf --max-time 20 -D - -o "$out/$3-sample.json" "$1/v1/chat/completions" \
        -H "Authorization: Bearer $2" -H 'content-type: application/json' --data-binary "@$body") \
        || { echo "run.sh: $3 does not answer; see $out/$3.log" >&2; exit 1; }
    case "$3" in
        emguard*) grep -qi '^x-emguard-filter:' <<<"$headers" \
            || { echo "run.sh: $3 answered without x-emguard-filter; the code filter did not act" >&2; exit 1; } ;;
    esac
    # The review target prices the check on answers it does not hold: none may be held or flagged.
    if grep -qi '^x-emguard-review:' <<<"$headers"; then
        echo "run.sh: $3 sent the benchmark's answer to review; its policy must hold none" >&2
        exit 1
    fi
}

# The gateway's counters (monitor offered/sampled/dropped/judged, filter verdicts, requests).
scrape() { # base URL, output file
    curl -sf "$1/metrics" -H "Authorization: Bearer $EMGUARD_ADMIN_TOKEN" > "$2" \
        || echo "run.sh: could not read $1/metrics" >&2
}

# One measured point: warm-up, then `duration` seconds at `rate` requests/s, open loop
# (oha's --latency-correction counts the time a request waited for its scheduled start, so a
# gateway that falls behind shows it in the percentiles instead of hiding it; -w lets the
# requests in flight at the deadline finish instead of counting them as errors).
# 50 requests/s is in the default rates because one LiteLLM worker saturates near 100/s here:
# it is the point where the peer's added latency is its own and not its queue's.
load() { # base URL, key, rate, seconds, output file (or /dev/null)
    taskset -c "$load_cores" "$oha" --no-tui --output-format json -q "$3" -z "${4}s" \
        --latency-correction -w -c 200 -t 10s -m POST -H 'content-type: application/json' \
        -H "Authorization: Bearer $2" -D "$body" "$1/v1/chat/completions" > "$5"
}

# CPU time (user + system, in clock ticks) of a process and its children: what one request
# costs the server, whatever else the shared cores were doing.
cpu_ticks() { # pid
    local total=0 p
    for p in "$1" $(pgrep -P "$1" || true); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

point() { # target, base URL, key, rate, pid of the server under test, round
    local name="$1-$4-r$6"
    echo "== round $6: $1 at $4 requests/s (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    load "$2" "$3" "$4" "$warmup" /dev/null
    local before
    before=$(cpu_ticks "$5")
    case "$1" in emguard*) scrape "$2" "$out/$name.metrics0" ;; esac
    load "$2" "$3" "$4" "$duration" "$out/$name.json"
    printf '%s %s %s\n' "$(cut -d' ' -f1 /proc/loadavg)" "$(($(cpu_ticks "$5") - before))" \
        "$(getconf CLK_TCK)" > "$out/$name.load"
    case "$1" in emguard*) scrape "$2" "$out/$name.metrics1" ;; esac
}

emguard_point() { # target, rate, round: a fresh gateway (store and all) for each point
    start_emguard "$here/$1.yaml" "$1"
    point "$1" "http://127.0.0.1:$emguard_port" "$key" "$2" "$emguard_pid" "$3"
    stop "$emguard_pid"
}

if [ "$soak" = true ]; then
    start_emguard "$here/emguard.yaml" emguard
    # VmRSS and RssAnon (kB): the binary's mapped code pages are part of VmRSS and only grow
    # while new code paths run; the heap is in RssAnon.
    rss() { awk '/VmRSS|RssAnon/ {printf "%s\t", $2}' "/proc/$emguard_pid/status"; }
    echo "== soak: emguard at 1000 requests/s for 600 s, RSS every 10 s" >&2
    load "http://127.0.0.1:$emguard_port" "$key" 1000 600 "$out/soak-1000-r1.json" &
    load_pid=$!
    : > "$out/soak-rss.tsv"
    for t in $(seq 0 10 600); do
        printf '%s\t%s\n' "$t" "$(rss)" >> "$out/soak-rss.tsv"
        [ "$t" -lt 600 ] && sleep 10
    done
    wait "$load_pid"
    python3 "$here/table.py" soak "$out"
    exit 0
fi

points=0
for rate in $rates; do
    for t in direct emguard emguard-normal emguard-review emguard-monitor emguard-monitor-apart; do
        wanted "$t" && points=$((points + rounds))
    done
    [ "$rate" = 1000 ] && wanted emguard-durable && points=$((points + rounds))
done
echo "== cores: load generator + upstream on $load_cores, gateway under test on $gateway_cores;" \
    "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $points points of ${warmup} s + ${duration} s" \
    "(about $((points * (warmup + duration + 3) / 60 + 1)) min)" >&2
rm -f "$out"/*-r[0-9]*.json "$out"/*-r[0-9]*.load "$out"/*-r[0-9]*.metrics[01]

for round in $(seq 1 "$rounds"); do
    for rate in $rates; do
        if wanted direct; then
            point direct "http://127.0.0.1:$upstream_port" none "$rate" "$upstream_pid" "$round"
        fi
        for t in emguard emguard-normal emguard-review emguard-monitor emguard-monitor-apart; do
            if wanted "$t"; then emguard_point "$t" "$rate" "$round"; fi
        done
        if [ "$rate" = 1000 ] && wanted emguard-durable; then
            emguard_point emguard-durable 1000 "$round"
        fi
    done
done

if ! wanted litellm; then
    python3 "$here/table.py" latency "$out" $rates
    exit 0
fi
# LiteLLM: one uvicorn worker (its default), the bundled model price map (no network here).
LITELLM_LOCAL_MODEL_COST_MAP=True taskset -c "$gateway_cores" "$venv/bin/litellm" \
    --config "$here/litellm.yaml" --host 127.0.0.1 --port "$litellm_port" > "$out/litellm.log" 2>&1 &
litellm_pid=$!
pids+=("$litellm_pid")
wait_port "$litellm_port" litellm "$litellm_pid"
check "http://127.0.0.1:$litellm_port" "$litellm_master" litellm
for round in $(seq 1 "$rounds"); do
    for rate in $rates; do
        point litellm "http://127.0.0.1:$litellm_port" "$litellm_master" "$rate" "$litellm_pid" "$round"
    done
done
stop "$litellm_pid"

python3 "$here/table.py" latency "$out" $rates
