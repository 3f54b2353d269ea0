"""The official `openai` package through the emguard gateway, to a local-model version and to
an upstream version that is a second emguard server. Usage:
gateway_openai.py GATEWAY_URL API_KEY MODEL [MODEL...]. Prints one `ok:` line per check."""

import sys

import openai

base_url, key, models = sys.argv[1], sys.argv[2], sys.argv[3:]
client = openai.OpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0)
QUESTION = [{"role": "user", "content": "Name a colour of the rainbow."}]


def check(name, condition, detail=""):
    if not condition:
        sys.exit(f"FAILED: {name} {detail}")
    print(f"ok: {name}")


listed = sorted(m.id for m in client.models.list().data)
check("models.list", listed == sorted(models), listed)

for model in models:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=QUESTION, temperature=0, max_tokens=12, seed=3)
    plain = raw.parse()
    check(f"{model}: plain answer", plain.choices[0].message.content.strip() != "" and plain.model == model, plain)
    check(f"{model}: usage", plain.usage.prompt_tokens > 0 and 0 < plain.usage.completion_tokens <= 12, plain.usage)
    check(f"{model}: version header", raw.headers.get("x-emguard-version") is not None, dict(raw.headers))
    check(f"{model}: request id", raw.headers.get("x-request-id") == plain.id, (plain.id, dict(raw.headers)))
    again = client.chat.completions.create(model=model, messages=QUESTION, temperature=0, max_tokens=12, seed=3)
    check(f"{model}: greedy is reproducible", again.choices[0].message.content == plain.choices[0].message.content)

    many = client.chat.completions.create(model=model, messages=QUESTION, n=2, temperature=1, max_tokens=8, seed=5)
    check(f"{model}: n=2", sorted(c.index for c in many.choices) == [0, 1], many.choices)

    lp = client.chat.completions.create(model=model, messages=QUESTION, temperature=0, max_tokens=4, logprobs=True, top_logprobs=3)
    entries = lp.choices[0].logprobs.content
    check(f"{model}: logprobs", len(entries) == lp.usage.completion_tokens and all(len(e.top_logprobs) == 3 for e in entries), entries)

    pieces, finish, usage = [], None, None
    for chunk in client.chat.completions.create(model=model, messages=QUESTION, temperature=0, max_tokens=12, seed=3,
                                                stream=True, stream_options={"include_usage": True}):
        check(f"{model}: chunk model", chunk.model == model, chunk) if not pieces else None
        for c in chunk.choices:
            pieces.append(c.delta.content or "")
            finish = c.finish_reason or finish
        usage = chunk.usage or usage
    check(f"{model}: stream equals the whole answer", "".join(pieces) == plain.choices[0].message.content, ("".join(pieces), plain))
    check(f"{model}: stream finish and usage", finish in ("stop", "length") and usage is not None and usage.completion_tokens > 0, (finish, usage))

bad = openai.OpenAI(base_url=base_url + "/v1", api_key="emg_000000000000_nope", max_retries=0)
try:
    bad.chat.completions.create(model=models[0], messages=QUESTION, max_tokens=4)
    check("bad key is refused", False)
except openai.AuthenticationError as e:
    check("bad key is refused", e.status_code == 401 and e.code == "invalid_api_key", e)

try:
    client.chat.completions.create(model="no-such-model", messages=QUESTION, max_tokens=4)
    check("unknown model", False)
except openai.NotFoundError as e:
    check("unknown model", e.status_code == 404, e)

print("all checks passed")
