"""Drives `emguard serve` with the official `openai` package: plain, n>1, logprobs, streaming,
concurrent requests, and errors as the client sees them. Usage: openai_client.py BASE_URL MODEL.
Exits non-zero on the first failed check; prints one `ok:` line per check."""

import sys
import threading

import openai

base_url, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0)
QUESTION = [{"role": "user", "content": "Name three colours of the rainbow."}]


def check(name, condition, detail=""):
    if not condition:
        sys.exit(f"FAILED: {name} {detail}")
    print(f"ok: {name}")


# Models endpoint.
ids = [m.id for m in client.models.list().data]
check("models.list names the served model", model in ids, ids)

# Plain, greedy: well-formed, reproducible.
plain = client.chat.completions.create(model=model, messages=QUESTION, temperature=0, max_tokens=24, seed=1)
choice = plain.choices[0]
check("plain: one choice", len(plain.choices) == 1 and choice.index == 0)
check("plain: assistant text", choice.message.role == "assistant" and choice.message.content.strip() != "", choice)
check("plain: finish reason", choice.finish_reason in ("stop", "length"), choice.finish_reason)
check("plain: ids", plain.id.startswith("chatcmpl-") and plain.object == "chat.completion" and plain.model == model)
u = plain.usage
check("plain: usage", u.prompt_tokens > 0 and 0 < u.completion_tokens <= 24 and u.total_tokens == u.prompt_tokens + u.completion_tokens, u)
again = client.chat.completions.create(model=model, messages=QUESTION, temperature=0, max_tokens=24, seed=1)
check("plain: greedy is reproducible", again.choices[0].message.content == choice.message.content)
short = client.chat.completions.create(model=model, messages=QUESTION, temperature=0, max_tokens=3)
check("plain: max_tokens bounds the answer", short.usage.completion_tokens <= 3 and short.choices[0].finish_reason == "length", short)

# n > 1 with a seed: n answers, reproducible, not all the same.
def sample_three():
    r = client.chat.completions.create(model=model, messages=QUESTION, n=3, temperature=1.0, seed=7, max_tokens=16)
    return r, [c.message.content for c in sorted(r.choices, key=lambda c: c.index)]

many, texts = sample_three()
check("n=3: three choices", sorted(c.index for c in many.choices) == [0, 1, 2], many.choices)
check("n=3: every answer has text", all(t.strip() for t in texts), texts)
check("n=3: samples differ", len(set(texts)) > 1, texts)
check("n=3: same seed, same answers", sample_three()[1] == texts)

# Logprobs: one entry per generated token, top alternatives sorted, greedy picks the top one.
lp = client.chat.completions.create(model=model, messages=QUESTION, temperature=0, max_tokens=12, logprobs=True, top_logprobs=3)
entries = lp.choices[0].logprobs.content
check("logprobs: one entry per token", len(entries) == lp.usage.completion_tokens, (len(entries), lp.usage))
for e in entries:
    tops = [t.logprob for t in e.top_logprobs]
    check("logprobs: three alternatives, sorted, <= 0", len(tops) == 3 and tops == sorted(tops, reverse=True) and all(t <= 0 for t in tops), e)
    check("logprobs: greedy token is the most likely", e.token == e.top_logprobs[0].token and abs(e.logprob - tops[0]) < 1e-4, e)
    check("logprobs: bytes are the token's UTF-8", bytes(e.bytes) == e.token.encode(), e)
content = lp.choices[0].message.content
if lp.choices[0].finish_reason == "length" and content.isascii():
    check("logprobs: tokens spell the answer", "".join(e.token for e in entries) == content, (entries, content))
nolp = client.chat.completions.create(model=model, messages=QUESTION, temperature=0, max_tokens=4)
check("logprobs: absent unless asked", nolp.choices[0].logprobs is None)

# Streaming: the deltas add up to the non-streamed answer.
chunks = list(client.chat.completions.create(
    model=model, messages=QUESTION, temperature=0, max_tokens=24, seed=1, stream=True,
    stream_options={"include_usage": True}))
check("stream: chunk objects", all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks))
check("stream: first delta has the role", chunks[0].choices[0].delta.role == "assistant")
streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
check("stream: deltas equal the plain answer", streamed == choice.message.content, (streamed, choice.message.content))
reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
check("stream: one finish reason, the plain one", reasons == [choice.finish_reason], reasons)
check("stream: usage chunk last", chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == u.completion_tokens, chunks[-1])

streamed_n = {0: "", 1: ""}
lp_count = 0
for c in client.chat.completions.create(model=model, messages=QUESTION, n=2, temperature=1.0, seed=7, max_tokens=16,
                                        stream=True, logprobs=True, top_logprobs=2):
    for ch in c.choices:
        streamed_n[ch.index] += ch.delta.content or ""
        if ch.logprobs and ch.logprobs.content:
            lp_count += len(ch.logprobs.content)
            check("stream: logprobs per delta", all(len(t.top_logprobs) == 2 for t in ch.logprobs.content))
whole = client.chat.completions.create(model=model, messages=QUESTION, n=2, temperature=1.0, seed=7, max_tokens=16)
check("stream n=2: same as non-streamed", [streamed_n[0], streamed_n[1]] == [c.message.content for c in whole.choices], streamed_n)
check("stream n=2: logprobs for every token", lp_count == whole.usage.completion_tokens, (lp_count, whole.usage))

# Concurrent requests share the engine (continuous batching) and all complete.
prompts = ["Say hello.", "What is the capital of France?", "Count to five.", "Name a fruit.", "What is 2+2?", "Say bye."]
results = [None] * len(prompts)
def ask(i):
    try:
        results[i] = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompts[i]}],
                                                    temperature=0, max_tokens=8 + 4 * i)
    except Exception as e:  # recorded, checked below
        results[i] = e
threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
for t in threads:
    t.start()
for t in threads:
    t.join()
for i, r in enumerate(results):
    check(f"concurrent request {i} answered", isinstance(r, openai.types.chat.ChatCompletion) and r.choices[0].message.content.strip(), r)
    check(f"concurrent request {i} within its max_tokens", r.usage.completion_tokens <= 8 + 4 * i, r.usage)

# Errors surface as the client's typed exceptions.
try:
    client.chat.completions.create(model="no-such-model", messages=QUESTION)
    check("unknown model raises", False)
except openai.NotFoundError as e:
    check("unknown model: NotFoundError, model_not_found", e.status_code == 404 and e.code == "model_not_found", e)
try:
    client.chat.completions.create(model=model, messages=QUESTION, n=100)
    check("n over the limit raises", False)
except openai.BadRequestError as e:
    check("n over the limit: BadRequestError on n", e.status_code == 400 and e.param == "n", e)

print("all checks passed")
