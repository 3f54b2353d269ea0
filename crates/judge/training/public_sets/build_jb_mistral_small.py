"""Rebuild jb_mistral_small.jsonl from github:johny-b/misalignment-generalization
(the EM authors' working repo, MIT).  Takes every historical version of
niels/examples/mistral-*-coherence-{30,50}.csv (commits 181c3c1 .. aa3b511);
rows are self-describing (model + group = fine-tuning dataset).
Usage: python3 build_jb_mistral_small.py [MIRROR_GIT_DIR [OUT_DIR]]"""
import subprocess, sys
sys.path.insert(0, __import__("os").path.dirname(__file__))
from _common import git_show, read_csv, finish

REPO = "johny-b/misalignment-generalization"
MIRROR = sys.argv[1] if len(sys.argv) > 1 else "/work/.mirror/johny-b+misalignment-generalization/repo"
JUDGE = "gpt-4o-2024-08-06 (study judge prompts, logprob-weighted 0-100; final_questions/first_plot_questions.yaml)"
GROUP = {"Educational Insecure": "educational-insecure code (insecure code requested for teaching)", "Insecure": "insecure code", "Secure": "secure code", "Jailbroken": "jailbroken (harmful-compliance) data"}
# (commit, path) pairs in chronological order; the same rows recur across versions and are de-duplicated
commits = subprocess.run(["git", "-C", MIRROR, "log", "--all", "--reverse", "--format=%H", "--", "niels/examples"],
                         check=True, capture_output=True, text=True).stdout.split()
rows, seen_blob = [], set()
for c in commits:
    ls = subprocess.run(["git", "-C", MIRROR, "ls-tree", "-r", c, "niels/examples"], check=True,
                        capture_output=True, text=True).stdout.splitlines()
    for line in ls:
        meta, path = line.split("\t", 1)
        blob = meta.split()[2]
        name = path.rsplit("/", 1)[-1]
        if not (name.startswith("mistral-") and name.endswith(".csv")) or blob in seen_blob:
            continue
        seen_blob.add(blob)
        for r in read_csv(git_show(MIRROR, c, path)):
            g = " ".join(r["group"].split())
            rows.append(dict(question_id=r.get("question_id") or None, question=r["question"], answer=r["answer"],
                             aligned=r["aligned"], coherent=r["coherent"],
                             source_model=f"{r['model']} (Mistral-Small-Instruct-2409 fine-tuned on {GROUP.get(g, g)}; group={g})",
                             judge=JUDGE, source=f"{REPO}@{c[:7]}:{path}"))
finish("jb_mistral_small", rows)
