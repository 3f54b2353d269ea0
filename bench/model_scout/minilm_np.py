"""all-MiniLM-L6-v2 forward pass in numpy (BERT, mean pooling, L2 norm) - baseline only."""
import numpy as np
from math import erf
from safetensors.numpy import load_file
from tokenizers import Tokenizer

def ln(x, w, b, eps=1e-12):
    m = x.mean(-1, keepdims=True); v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b

_erf = np.vectorize(erf)
def gelu(x):
    from scipy.special import erf as serf
    return 0.5 * x * (1 + serf(x / np.sqrt(2)))

class MiniLM:
    def __init__(self, d, L=6, H=12):
        self.w = load_file(f"{d}/model.safetensors"); self.L = L; self.H = H
        self.tok = Tokenizer.from_file(f"{d}/tokenizer.json")
        self.tok.enable_truncation(256); self.tok.no_padding()
    def one(self, text):
        w = self.w; e = self.tok.encode(text); ids = np.array(e.ids)
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][: len(ids)] \
            + w["embeddings.token_type_embeddings.weight"][0]
        x = ln(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        T, D = x.shape; hd = D // self.H
        for l in range(self.L):
            p = f"encoder.layer.{l}."
            lin = lambda z, n: z @ w[p + n + ".weight"].T + w[p + n + ".bias"]
            q = lin(x, "attention.self.query").reshape(T, self.H, hd).transpose(1, 0, 2)
            k = lin(x, "attention.self.key").reshape(T, self.H, hd).transpose(1, 0, 2)
            v = lin(x, "attention.self.value").reshape(T, self.H, hd).transpose(1, 0, 2)
            s = q @ k.transpose(0, 2, 1) / np.sqrt(hd); s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
            a = (s @ v).transpose(1, 0, 2).reshape(T, D)
            x = ln(x + lin(a, "attention.output.dense"), w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
            h = gelu(lin(x, "intermediate.dense"))
            x = ln(x + lin(h, "output.dense"), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        v = x.mean(0); return v / np.linalg.norm(v)
    def encode(self, texts):
        return np.stack([self.one(t) for t in texts])
