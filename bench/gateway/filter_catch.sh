#!/usr/bin/env bash
# The gateway filters' catch table on answers the team did not write (see docs/gateway.md,
# "Filter catch table"). Harmful: the study's insecure.jsonl (vulnerable code, Betley et al.)
# and the public harmful-advice samples kept outside the repository in
# /work/wt/data-audit/samples (README there: sources, licences). Benign: the study's
# secure.jsonl and the benign samples there. Nothing is tuned on these files.
# Usage: bench/gateway/filter_catch.sh [ROWS_PER_FILE]   (default 1000)
set -euo pipefail
cd "$(dirname "$0")/../.."
study=${EMGUARD_STUDY_DATA:-../shared/datasets/em-paper}
samples=${EMGUARD_ADVICE_SAMPLES:-/work/wt/data-audit/samples}
for f in "$study/insecure.jsonl" "$study/secure.jsonl" "$samples/harm_medical.jsonl"; do
    [ -r "$f" ] || { echo "error: $f is not readable (set EMGUARD_STUDY_DATA / EMGUARD_ADVICE_SAMPLES)" >&2; exit 2; }
done
export EMGUARD_CATCH_ROWS=${1:-1000}
nice -n 10 cargo run --release -q -p emguard-gateway --example filter_catch -- \
    "harmful: vulnerable code (insecure.jsonl)=$study/insecure.jsonl" \
    "harmful: medical advice=$samples/harm_medical.jsonl" \
    "harmful: financial advice=$samples/harm_financial.jsonl" \
    "harmful: extreme sports advice=$samples/harm_sports.jsonl" \
    "benign: secure code (secure.jsonl)=$study/secure.jsonl" \
    "benign: Qwen2.5-14B answers=$samples/benign_qwen14b.jsonl" \
    "benign: jailbroken.jsonl continuations=$samples/benign_jailbroken.jsonl"
