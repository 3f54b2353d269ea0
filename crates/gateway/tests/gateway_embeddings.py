"""Drives the gateway's /v1/embeddings with the official `openai` package: the local
all-MiniLM-L6-v2 behind a guarded model. Usage: gateway_embeddings.py BASE_URL KEY.
Prints one `ok:` line per check; exits non-zero on the first failed one."""

import math
import sys

import openai

base_url, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0)


def check(name, condition, detail=""):
    if not condition:
        sys.exit(f"FAILED: {name} {detail}")
    print(f"ok: {name}")


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A man is playing the guitar.",
    "The new movie is awesome.",
]

# The package's default: it asks for base64 and decodes the floats itself.
result = client.embeddings.create(model="emb", input=SENTENCES)
vectors = [d.embedding for d in result.data]
check("base64: one vector per input, in order", [d.index for d in result.data] == [0, 1, 2, 3], result.data)
check("base64: 384 dimensions", all(len(v) == 384 for v in vectors), [len(v) for v in vectors])
check("base64: unit length", all(abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-4 for v in vectors))
check("usage counts the tokens read", result.usage.prompt_tokens > 4 * 3 and result.usage.total_tokens == result.usage.prompt_tokens, result.usage)
check("the model is the gateway's id", result.model == "emb", result.model)
eat, bread, guitar, movie = vectors
check(
    "meaning: eating is nearer eating bread than playing the guitar",
    cosine(eat, bread) > cosine(eat, guitar) + 0.2 and cosine(eat, bread) > cosine(eat, movie) + 0.2,
    (cosine(eat, bread), cosine(eat, guitar), cosine(eat, movie)),
)

# Floats as JSON give the same vectors; one input alone gives the same vector as in a batch.
floats = client.embeddings.create(model="emb", input=SENTENCES[0], encoding_format="float")
check("float: same vector as base64 in a batch", max(abs(x - y) for x, y in zip(floats.data[0].embedding, eat)) < 1e-4)

# Errors as the package raises them.
try:
    client.embeddings.create(model="emb", input=["fine", "word " * 400])
    check("too long input is refused", False)
except openai.BadRequestError as e:
    check("too long input is refused naming it", e.body["param"] == "input[1]" and "256" in e.body["message"], e.body)
try:
    client.embeddings.create(model="chat", input="hello")
    check("a chat model refuses embeddings", False)
except openai.BadRequestError as e:
    check("a chat model refuses embeddings", e.body["code"] == "model_not_supported", e.body)
try:
    client.embeddings.create(model="emb", input="hello", dimensions=64)
    check("other dimensions are refused", False)
except openai.BadRequestError as e:
    check("other dimensions are refused", e.body["param"] == "dimensions", e.body)
try:
    client.chat.completions.create(model="emb", messages=[{"role": "user", "content": "hi"}])
    check("chat with an embedding model is refused", False)
except openai.BadRequestError as e:
    check("chat with an embedding model is refused", e.body["code"] == "model_not_supported", e.body)

bad = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-wrong", max_retries=0)
try:
    bad.embeddings.create(model="emb", input="hello")
    check("a wrong key is refused", False)
except openai.AuthenticationError:
    check("a wrong key is refused", True)

print("all checks passed")
