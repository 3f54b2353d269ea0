"""llama.cpp side of bench/runtime.sh: the same workload as crates/runtime/examples/bench.rs,
through llama-cpp-python's low-level API (one context, several sequences per llama_decode,
slots refilled as answers finish). Prints one JSON object per measurement."""
import argparse
import ctypes
import json
import time

import numpy as np
import llama_cpp as L

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--prompts", required=True)
ap.add_argument("--batches", default="8,16,32")
ap.add_argument("--answer-tokens", type=int, default=100)
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()

@L.llama_log_callback
def _quiet(level, text, user_data):
    pass


L.llama_log_set(_quiet, ctypes.c_void_p())
L.llama_backend_init()
mparams = L.llama_model_default_params()
model = L.llama_model_load_from_file(args.model.encode(), mparams)
vocab = L.llama_model_get_vocab(model)
n_vocab = L.llama_vocab_n_tokens(vocab)
max_batch = max(int(b) for b in args.batches.split(","))

cparams = L.llama_context_default_params()
cparams.n_ctx = 512 * max_batch
cparams.n_batch = 512 * max_batch
cparams.n_ubatch = 512
cparams.n_seq_max = max_batch
cparams.n_threads = args.threads
cparams.n_threads_batch = args.threads
cparams.kv_unified = True
ctx = L.llama_init_from_model(model, cparams)
mem = L.llama_get_memory(ctx)
batch = L.llama_batch_init(512 * max_batch, 0, max_batch)


def tokenize(text):
    buf = (L.llama_token * 4096)()
    n = L.llama_tokenize(vocab, text.encode(), len(text.encode()), buf, 4096, False, True)
    return list(buf[:n])


def chat(question):
    return ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n")


def decode(items):
    """items: (seq, token, pos, want_logits). Returns the batch index of each wanted row."""
    batch.n_tokens = len(items)
    rows = {}
    for i, (seq, tok, pos, want) in enumerate(items):
        batch.token[i] = tok
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = want
        if want:
            rows[seq] = i
    if L.llama_decode(ctx, batch) != 0:
        raise SystemExit("llama_decode failed")
    return rows


def logits(row):
    ptr = L.llama_get_logits_ith(ctx, row)
    return np.ctypeslib.as_array(ptr, shape=(n_vocab,))


def sample(rng, lg):
    p = np.exp((lg - lg.max()).astype(np.float64))
    return int(rng.choice(n_vocab, p=p / p.sum()))


prompts = [chat(q) for q in json.load(open(args.prompts))]
long_prompt = tokenize(chat(" ".join(json.load(open(args.prompts)))))


def run(answers, slots, max_tokens, rng):
    """Generate `answers` answers, at most `slots` at once. Returns (seconds, tokens)."""
    L.llama_memory_clear(mem, True)
    queue = list(range(answers))
    live = {}  # seq -> [pos, last token, generated]
    generated = 0
    start = time.perf_counter()
    while queue or live:
        items = []
        for seq in range(slots):
            if seq not in live and queue:
                q = queue.pop(0)
                toks = tokenize(prompts[q % len(prompts)])
                L.llama_memory_seq_rm(mem, seq, -1, -1)
                items += [(seq, t, p, p == len(toks) - 1) for p, t in enumerate(toks)]
                live[seq] = [len(toks), None, 0]
            elif seq in live:
                pos, tok, _ = live[seq]
                items.append((seq, tok, pos, True))
                live[seq][0] += 1
        rows = decode(items)
        for seq, row in rows.items():
            tok = sample(rng, logits(row))
            state = live[seq]
            if L.llama_vocab_is_eog(vocab, tok):
                del live[seq]
                continue
            state[1] = tok
            state[2] += 1
            generated += 1
            if state[2] >= max_tokens:
                del live[seq]
    return time.perf_counter() - start, generated


rng = np.random.default_rng(7)
# Prefill: the long prompt, batch 1, best of 3.
best = 1e9
for _ in range(3):
    L.llama_memory_clear(mem, True)
    t = time.perf_counter()
    rows = decode([(0, tok, p, p == len(long_prompt) - 1) for p, tok in enumerate(long_prompt)])
    sample(rng, logits(rows[0]))
    best = min(best, time.perf_counter() - t)
print(json.dumps({"engine": "llama.cpp", "metric": "prefill_tok_s", "batch": 1, "tokens": len(long_prompt),
                  "value": len(long_prompt) / best}))

# Decode at batch 1: 128 tokens after a short prompt, prefill time subtracted.
L.llama_memory_clear(mem, True)
toks = tokenize(prompts[0])
t0 = time.perf_counter()
rows = decode([(0, tok, p, p == len(toks) - 1) for p, tok in enumerate(toks)])
tok = sample(rng, logits(rows[0]))
t1 = time.perf_counter()
n = 0
for i in range(127):
    rows = decode([(0, tok, len(toks) + i, True)])
    tok = sample(rng, logits(rows[0]))
    n += 1
t2 = time.perf_counter()
print(json.dumps({"engine": "llama.cpp", "metric": "decode_tok_s", "batch": 1, "tokens": n, "value": n / (t2 - t1)}))

for b in (int(x) for x in args.batches.split(",")):
    secs, gen = run(2 * b, b, args.answer_tokens, rng)
    print(json.dumps({"engine": "llama.cpp", "metric": "answers_per_min", "batch": b, "answers": 2 * b,
                      "tokens": gen, "seconds": secs, "value": 2 * b / secs * 60}))
