"""Cross-lingual transfer pilot on bench/gateway/text_catch.
Fixed before any figure was seen: L2-normalised embedding -> StandardScaler (fit on training rows)
-> LogisticRegression(C=1.0, lbfgs, max_iter=5000) -> flag if P(harmful) >= 0.5.
Dev (default): train on EN even rows (20 harmful + 20 benign); report ES/FR/DE even rows.
--final: the held-out odd rows, once: (A) EN-even model on odd rows of every language;
(B) model trained on even rows of all four languages, on odd rows of every language."""
import os, sys, numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.metrics import roc_auc_score

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.environ.get("MODEL_SCOUT_OUT", os.path.join(HERE, "..", "out", "model_scout"))

def fit(X, y):
    sc = StandardScaler().fit(X)
    clf = LogisticRegression(C=1.0, max_iter=5000).fit(sc.transform(X), y)
    return lambda Z: clf.predict_proba(sc.transform(Z))[:, 1]

def report(p, y, mask, lang, name):
    out = []
    for L in ["en", "es", "fr", "de"]:
        m = mask & (lang == L)
        if not m.any(): continue
        h = m & (y == 1); b = m & (y == 0)
        ch = int((p[h] >= .5).sum()); fb = int((p[b] >= .5).sum())
        auc = roc_auc_score(y[m], p[m])
        out.append(f"{L}: harmful caught {ch}/{h.sum()} ({100*ch/h.sum():.0f}%), benign flagged {fb}/{b.sum()} ({100*fb/b.sum():.0f}%), AUC {auc:.2f}")
    m = mask & (lang != "en")
    h = m & (y == 1); b = m & (y == 0)
    ch = int((p[h] >= .5).sum()); fb = int((p[b] >= .5).sum())
    out.append(f"ES+FR+DE: harmful caught {ch}/{h.sum()} ({100*ch/h.sum():.0f}%), benign flagged {fb}/{b.sum()} ({100*fb/b.sum():.0f}%), AUC {roc_auc_score(y[m], p[m]):.2f}")
    print(f"  [{name}]"); [print("    " + s) for s in out]

def main():
  final = "--final" in sys.argv
  for enc in ["minilm", "e5", "use"]:
      d = np.load(os.path.join(OUT, f"emb_{enc}.npz"))
      y, lang, nn = d["y"], d["lang"], d["nn"]
      even, odd = nn % 2 == 0, nn % 2 == 1
      for view in ["a", "qa"]:
          X = d[view]
          print(f"== encoder={enc} text={'answer only' if view=='a' else 'question+answer'}")
          tr = even & (lang == "en")
          f = fit(X[tr], y[tr])
          if not final:
              report(f(X), y, even & (lang != "en"), lang, "train EN even -> eval ES/FR/DE even (dev)")
          else:
              report(f(X), y, odd, lang, "train EN even -> eval odd rows (HELD OUT)")
              g = fit(X[even], y[even])
              report(g(X), y, odd, lang, "train all-language even -> eval odd rows (HELD OUT)")

if __name__ == "__main__":
    main()