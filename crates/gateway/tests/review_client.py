"""One chat request with the official `openai` package, which may be held for human review.
Usage: review_client.py BASE_URL MODEL QUESTION. Prints one JSON line: the answer, or the error
the client raised (status, code, review id)."""

import json
import sys

import openai

base_url, model, question = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=120)
try:
    answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}])
    calls = [c.function.name for c in answer.choices[0].message.tool_calls or []]
    print(json.dumps({"ok": True, "content": answer.choices[0].message.content, "tool_calls": calls}))
except openai.APIStatusError as e:
    error = (e.body or {}) if isinstance(e.body, dict) else {}
    error = error.get("error", error)
    print(json.dumps({"ok": False, "status": e.status_code, "code": error.get("code"), "review_id": error.get("review_id")}))
