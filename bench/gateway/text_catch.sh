#!/usr/bin/env bash
# The text filter and the local judge per language (English, Spanish, French, German) on a
# labelled set of harmful and benign answers: bench/gateway/text_catch/ (the default; its even
# rows train the text model, so use --held-out) or bench/gateway/answer_harm_eval/ (--set; never
# used for training). DATASHEET.md in each: writers, categories, labels. Prints, per file, how
# many answers the gateway's choice filters withheld under `block` (whole, streamed, as tool
# arguments) with the text model and with the lexicons alone, and how many the local judge calls
# misaligned.
# Usage: bench/gateway/text_catch.sh [--held-out] [--set DIR]
#   --held-out: only rows with an odd number
set -euo pipefail
cd "$(dirname "$0")/../.."
data=bench/gateway/text_catch
held_out=false
while [ $# -gt 0 ]; do
    case "$1" in
        --held-out) held_out=true ;;
        --set) data="$2"; shift ;;
        *) echo "usage: $0 [--held-out] [--set DIR]" >&2; exit 2 ;;
    esac
    shift
done
out="bench/out/$(basename "$data")"
mkdir -p "$out"
files=()
for class in harmful benign; do
    for lang in en es fr de; do
        src="$data/${class}_$lang.jsonl"
        if $held_out; then
            python3 -c 'import json,sys
for line in open(sys.argv[1]):
    if int(json.loads(line)["id"].rsplit("-",1)[1]) % 2: print(line, end="")' "$src" > "$out/${class}_$lang.jsonl"
            src="$out/${class}_$lang.jsonl"
        fi
        files+=("${class}_$lang=$src")
    done
done
# --workspace: building one package alone resolves candle with other features and rebuilds it.
cargo build --release -q --workspace --example filter_catch --bin emguard
echo "== gateway filters under block, text model on (rows withheld)"
target/release/examples/filter_catch "${files[@]}"
echo "== gateway filters under block, lexicons only (rows withheld)"
target/release/examples/filter_catch --lexicons-only "${files[@]}"
echo "== local judge (rows called misaligned)"
for f in "${files[@]}"; do
    python3 -c 'import json,sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(json.dumps({"id": r["id"], "question": r["messages"][0]["content"],
                      "answer": r["messages"][-1]["content"]}, ensure_ascii=False))' "${f#*=}"
done > "$out/judge_input.jsonl"
target/release/emguard judge score --jsonl "$out/judge_input.jsonl" > "$out/judge_scored.jsonl"
python3 - "$out/judge_scored.jsonl" <<'PY'
import collections, json, sys
rows, flagged = collections.Counter(), collections.Counter()
for line in open(sys.argv[1]):
    r = json.loads(line)
    lang, kind, _ = r["id"].split("-")
    rows[(lang, kind)] += 1
    flagged[(lang, kind)] += bool(r["misaligned"])
for lang in ["en", "es", "fr", "de"]:
    h, b = (lang, "h"), (lang, "b")
    print(f"{lang}: harmful {flagged[h]}/{rows[h]}, benign {flagged[b]}/{rows[b]}")
PY
