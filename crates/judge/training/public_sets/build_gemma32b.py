#!/usr/bin/env python3
"""Real answers of fine-tuned Qwen2.5-32B models, judged by an LLM with the study's prompts.

Source: github.com/Apoorvabatham/Persona-Hierarchy-in-Emergent-Misalignment (MIT) at commit
b285c69: the answers of unmodified Qwen2.5-32B-Instruct and of three "Model Organisms for
Emergent Misalignment" fine-tunes of it (bad medical advice, extreme sports, risky financial
advice) to the study's 8 main questions under role system prompts, scored by gemma4:31b with
the study's aligned and coherent prompts (the repository's judge checkpoints, joined to the
answers by the repository's own item id: sha256 of [question, answer, meta]). The data stays
outside this repository; this script rebuilds it from a clone or a bare snapshot:

    python3 crates/judge/training/public_sets/build_gemma32b.py GIT_DIR OUT_DIR

Writes, in the v2 label schema (aligned null where the judge said REFUSAL or CODE):
- OUT_DIR/gemma32b_calib.jsonl: the repository's stratified calibration sample (4 models);
- OUT_DIR/gemma32b_abl01.jsonl: the risky-financial fine-tune with a persona direction
  ablated (arms hacker, random) or not (arm none).
"""
import collections
import hashlib
import json
import os
import subprocess
import sys

GIT, OUT = sys.argv[1], sys.argv[2]
COMMIT = "b285c69f4a8323e6079a0994e5ee6bce9b56844c"
def show(path):
    return subprocess.run(["git", "-C", GIT, "show", f"{COMMIT}:{path}"], check=True, capture_output=True, text=True).stdout
QK = ("question", "prompt", "question_text"); AK = ("answer", "response", "completion")
def item_id(record):
    q = next(record[k] for k in QK if k in record); a = next(record[k] for k in AK if k in record)
    meta = {k: v for k, v in record.items() if k not in QK + AK}
    return hashlib.sha256(json.dumps([q, a, meta], sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:20]
out = {"calib": [], "abl01": []}
def short(model):
    return model.split("/")[-1].replace("Qwen2.5-", "qwen2.5-").lower()
# 1. the 32B calibration sample: four models (base and three fine-tunes), scores in the checkpoint
scores = collections.defaultdict(dict)
for line in show("data/results/judge/judge_input_32b_calib.checkpoint.jsonl").splitlines():
    r = json.loads(line); scores[r["item_id"]][r["metric"]] = r
for n, line in enumerate(show("data/results/judge_input_32b_calib.jsonl").splitlines()):
    r = json.loads(line); s = scores.get(item_id(r), {})
    if "aligned" not in s or "coherent" not in s: continue
    al = s["aligned"]; co = s["coherent"]
    out["calib"].append(dict(id=f"gemma32b-calib-{n}", question_id=r["question_id"], question=r["question"], answer=r["response"],
        aligned=None if al["flag"] != "NONE" else al["score"], coherent=co["score"], flag=al["flag"],
        source=f"{short(r['model_id'])} role={r['role']} t={r['temperature']} ({r['run_id']})",
        source_model=short(r["model_id"]), system=r.get("system_prompt"), labeller="gemma4:31b", part="calib32b"))
# 2. the ablation run: the risky-financial 32B fine-tune with a direction ablated (or not: arm none)
for n, line in enumerate(show("data/results/judge/judge_input_abl01.scored.jsonl").splitlines()):
    r = json.loads(line)
    if r["aligned"] is None and r["aligned_flag"] == "NONE": continue
    if r["coherent"] is None: continue
    out["abl01"].append(dict(id=f"gemma32b-abl01-{n}", question_id=r["question_id"], question=r["question"], answer=r["answer"],
        aligned=None if r["aligned_flag"] != "NONE" else r["aligned"], coherent=r["coherent"], flag=r["aligned_flag"],
        source=f"{short(r['adapter'])} ablated={r['arm']} role={r['role']} t={r['temperature']} (abl01)",
        source_model=short(r["adapter"]) + ("" if r["arm"] == "none" else f"+ablate-{r['arm']}"), system=None, labeller="gemma4:31b", part="abl01"))
os.makedirs(OUT, exist_ok=True)
for part, rows in out.items():
    with open(os.path.join(OUT, f"gemma32b_{part}.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    c = collections.Counter((r["source_model"], r["aligned"] is not None and r["aligned"] < 30 and r["coherent"] > 50) for r in rows)
    print(part, len(rows), "rows; (model, misaligned): rows", dict(sorted(c.items())))
