"""Print llama.cpp's token ids for the tokenizer torture texts (ground truth for
crates/runtime/tests/tokenizer.rs). Run with bench/.venv/bin/python (llama-cpp-python)."""
import json
import sys

from llama_cpp import Llama

TEXTS = [
    # digits, runs of spaces, tabs, newlines
    "In 2024, 3.14159 and 1,000,000 people   met\tat 10:30 —   then\n\n  left.",
    # accents, emoji, CJK
    "Café naïve résumé Ångström 😀👍🏽 日本語のテキスト 中文 한국어",
    # chat special tokens (parsed as special)
    "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n",
    # code
    "def f(x):\n    return x**2  # square\n\tif x != 0: print(f'{x!r}')\n",
    # contractions and punctuation runs
    "I'm sure you'll see they've done it; isn't it?! ... --> $$$ @@ ##",
    # leading / trailing spaces
    "  leading and trailing  ",
]

model = Llama(model_path=sys.argv[1], vocab_only=True, verbose=False)
for text in TEXTS:
    ids = model.tokenize(text.encode(), add_bos=False, special=True)
    print(json.dumps({"text": text, "ids": ids}, ensure_ascii=False))
