"""The official `openai` package's `completions` (legacy text completions) through the emguard
gateway: to a local-model version, to an upstream version that is a second emguard server, and
to a scripted upstream whose answer a key's strict filter policy withholds. Usage:
gateway_completions.py GATEWAY_URL KEY STRICT_KEY FILTERED_MODEL MODEL [MODEL...].
Prints one `ok:` line per check."""

import sys

import openai

base_url, key, strict_key, filtered, models = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
client = openai.OpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0)
strict = openai.OpenAI(base_url=base_url + "/v1", api_key=strict_key, max_retries=0)
PROMPT = "The three primary colours are"


def check(name, condition, detail=""):
    if not condition:
        sys.exit(f"FAILED: {name} {detail}")
    print(f"ok: {name}")


for model in models:
    raw = client.completions.with_raw_response.create(model=model, prompt=PROMPT, temperature=0, max_tokens=12, seed=3)
    plain = raw.parse()
    text = plain.choices[0].text
    check(f"{model}: text completion", plain.object == "text_completion" and plain.model == model and text.strip() != "", plain)
    check(f"{model}: usage", plain.usage.prompt_tokens > 0 and 0 < plain.usage.completion_tokens <= 12, plain.usage)
    check(f"{model}: request id", raw.headers.get("x-request-id") == plain.id, (plain.id, dict(raw.headers)))
    check(f"{model}: finish reason", plain.choices[0].finish_reason in ("stop", "length"), plain.choices[0])
    again = client.completions.create(model=model, prompt=[PROMPT], temperature=0, max_tokens=12, seed=3)
    check(f"{model}: greedy is reproducible", again.choices[0].text == text, (again.choices[0].text, text))

    default = client.completions.create(model=model, prompt=PROMPT, temperature=0)
    check(f"{model}: 16 tokens unless asked", 0 < default.usage.completion_tokens <= 16, default.usage)

    lp = client.completions.create(model=model, prompt=PROMPT, temperature=0, max_tokens=6, logprobs=2)
    p = lp.choices[0].logprobs
    n = lp.usage.completion_tokens
    check(f"{model}: logprobs per token", len(p.tokens) == n and len(p.token_logprobs) == n and len(p.text_offset) == n, p)
    check(f"{model}: two alternatives per token", all(len(t) == 2 for t in p.top_logprobs), p.top_logprobs)
    if lp.choices[0].text.isascii():
        check(f"{model}: tokens spell the text", "".join(p.tokens) == lp.choices[0].text, (p.tokens, lp.choices[0].text))

    pieces, finish, usage = [], None, None
    for chunk in client.completions.create(model=model, prompt=PROMPT, temperature=0, max_tokens=12, seed=3,
                                           stream=True, stream_options={"include_usage": True}):
        check(f"{model}: chunk object", chunk.object == "text_completion" and chunk.model == model, chunk) if not pieces else None
        for c in chunk.choices:
            pieces.append(c.text or "")
            finish = c.finish_reason or finish
        usage = chunk.usage or usage
    check(f"{model}: stream equals the whole answer", "".join(pieces) == text, ("".join(pieces), text))
    check(f"{model}: stream finish and usage", finish in ("stop", "length") and usage is not None and usage.completion_tokens > 0, (finish, usage))

    try:
        client.completions.create(model=model, prompt=PROMPT, max_tokens=4, echo=True)
        check(f"{model}: echo is refused", False)
    except openai.BadRequestError as e:
        check(f"{model}: echo is refused", e.status_code == 400 and e.param == "echo", e)

# The scripted upstream answers vulnerable code: the plain key's policy annotates it, the strict
# key's withholds it, whole and streamed.
VULNERABLE_CALL = "os.system"
raw = client.completions.with_raw_response.create(model=filtered, prompt="def ping(host):", max_tokens=8)
check("filtered: the plain key gets the code, annotated",
      VULNERABLE_CALL in raw.parse().choices[0].text and "code=annotated" in raw.headers.get("x-emguard-filter", ""),
      (raw.parse(), dict(raw.headers)))
raw = strict.completions.with_raw_response.create(model=filtered, prompt="def ping(host):", max_tokens=8)
blocked = raw.parse().choices[0]
check("filtered: the strict key's answer is withheld",
      VULNERABLE_CALL not in blocked.text and "withheld" in blocked.text and blocked.finish_reason == "content_filter",
      blocked)
check("filtered: the filter header says so", "code=blocked" in raw.headers.get("x-emguard-filter", ""), dict(raw.headers))
streamed, finish = "", None
for chunk in strict.completions.create(model=filtered, prompt="def ping(host):", max_tokens=8, stream=True):
    for c in chunk.choices:
        streamed += c.text or ""
        finish = c.finish_reason or finish
check("filtered: the stream stops before the code", VULNERABLE_CALL not in streamed and finish == "content_filter", (streamed, finish))

bad = openai.OpenAI(base_url=base_url + "/v1", api_key="emg_000000000000_nope", max_retries=0)
try:
    bad.completions.create(model=models[0], prompt=PROMPT, max_tokens=4)
    check("bad key is refused", False)
except openai.AuthenticationError as e:
    check("bad key is refused", e.status_code == 401 and e.code == "invalid_api_key", e)

print("all checks passed")
