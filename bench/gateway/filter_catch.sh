#!/usr/bin/env bash
# The gateway filters' catch table on answers the team did not write (see docs/gateway.md,
# "Filter catch table"). Harmful: the study's insecure.jsonl (vulnerable code, Betley et al.)
# and the public harmful-advice samples kept outside the repository in
# /work/wt/data-audit/samples (README there: sources, licences). Benign: the study's
# secure.jsonl and the benign samples there. Nothing is tuned on these files.
# Usage: bench/gateway/filter_catch.sh [--http] [ROWS_PER_FILE]   (default 1000)
#   --http  end to end: every row also through a real `emguard serve` (filters on `block`) from
#           an upstream on 127.0.0.1 that replays its answer (whole, streamed, as a tool call);
#           prints the HTTP counts and every row where HTTP and the direct call disagree
#           (exit 1 if any).
set -euo pipefail
cd "$(dirname "$0")/../.."
http=()
if [ "${1:-}" = --http ]; then
    http=(--http target/release/emguard)
    shift
fi
study=${EMGUARD_STUDY_DATA:-../shared/datasets/em-paper}
samples=${EMGUARD_ADVICE_SAMPLES:-/work/wt/data-audit/samples}
for f in "$study/insecure.jsonl" "$study/secure.jsonl" "$samples/harm_medical.jsonl"; do
    [ -r "$f" ] || { echo "error: $f is not readable (set EMGUARD_STUDY_DATA / EMGUARD_ADVICE_SAMPLES)" >&2; exit 2; }
done
export EMGUARD_CATCH_ROWS=${1:-1000}
# Built with the workspace's features (alone, `-p emguard-gateway` rebuilds candle with others).
nice -n 10 cargo build --release -q --workspace --example filter_catch
if [ ${#http[@]} -gt 0 ]; then
    nice -n 10 cargo build --release -q -p emguard
fi
nice -n 10 target/release/examples/filter_catch "${http[@]}" \
    "harmful: vulnerable code (insecure.jsonl)=$study/insecure.jsonl" \
    "harmful: medical advice=$samples/harm_medical.jsonl" \
    "harmful: financial advice=$samples/harm_financial.jsonl" \
    "harmful: extreme sports advice=$samples/harm_sports.jsonl" \
    "benign: secure code (secure.jsonl)=$study/secure.jsonl" \
    "benign: Qwen2.5-14B answers=$samples/benign_qwen14b.jsonl" \
    "benign: jailbroken.jsonl continuations=$samples/benign_jailbroken.jsonl"
