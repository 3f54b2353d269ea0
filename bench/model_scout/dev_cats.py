import os, numpy as np, collections
from evaluate import fit, OUT
for enc in ["e5","use"]:
    d=np.load(os.path.join(OUT, f"emb_{enc}.npz")); y,lang,nn,cat,ids=d["y"],d["lang"],d["nn"],d["cat"],d["id"]
    even=nn%2==0
    for view in ["a","qa"]:
        X=d[view]; tr=even&(lang=="en"); p=fit(X[tr],y[tr])(X)
        m=even&(lang!="en")
        miss=collections.Counter(cat[m&(y==1)&(p<.5)]); ff=collections.Counter(cat[m&(y==0)&(p>=.5)])
        print(enc,view,"missed harmful by category:",dict(miss),"| false flags by category:",dict(ff))
